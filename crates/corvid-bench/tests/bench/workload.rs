//! Workloads are a pure function of the seed, with the documented length distributions.

use corvid_bench::prompt::{TokenCounter, WORDS};
use corvid_bench::workload::{
    generate, parse_range, WorkloadArgs, WorkloadKind, SHAREGPT_OUTPUT_RANGE, SHAREGPT_PROMPT_RANGE,
};

/// One token per word: exact and fast, so lengths can be checked exactly.
pub struct WordTokenizer;

impl TokenCounter for WordTokenizer {
    fn encode(&self, text: &str) -> Vec<u32> {
        text.split_whitespace()
            .map(|w| WORDS.iter().position(|x| *x == w).expect("known word") as u32)
            .collect()
    }
    fn decode(&self, ids: &[u32]) -> String {
        ids.iter()
            .map(|&i| WORDS[i as usize])
            .collect::<Vec<_>>()
            .join(" ")
    }
}

fn args(kind: WorkloadKind, n: usize, seed: u64) -> WorkloadArgs {
    WorkloadArgs {
        workload: kind,
        input_len: 40,
        output_len: 20,
        num_prompts: n,
        system_prompt_len: 512,
        seed,
        ..WorkloadArgs::default()
    }
}

#[test]
fn same_seed_same_requests_other_seed_other_requests() {
    for kind in [
        WorkloadKind::Fixed,
        WorkloadKind::Sharegpt,
        WorkloadKind::SharedPrefix,
    ] {
        let a = generate(&args(kind, 20, 7), &WordTokenizer);
        let b = generate(&args(kind, 20, 7), &WordTokenizer);
        let c = generate(&args(kind, 20, 8), &WordTokenizer);
        assert_eq!(a, b, "{kind:?} not deterministic");
        assert_ne!(a, c, "{kind:?} ignores the seed");
        // Prompts differ from one another (no accidental prefix sharing in the user part).
        assert_ne!(a[0].user, a[1].user);
    }
}

#[test]
fn fixed_lengths_are_exact() {
    let reqs = generate(&args(WorkloadKind::Fixed, 10, 1), &WordTokenizer);
    assert_eq!(reqs.len(), 10);
    for r in &reqs {
        assert_eq!(r.user.token_ids.len(), 40);
        assert_eq!(WordTokenizer.encode(&r.user.text).len(), 40);
        assert_eq!(r.output_len, 20);
        assert!(r.system.is_none());
    }
}

#[test]
fn sharegpt_mix_is_in_range_and_skewed_short() {
    let reqs = generate(&args(WorkloadKind::Sharegpt, 2000, 3), &WordTokenizer);
    let p: Vec<usize> = reqs.iter().map(|r| r.prompt_len()).collect();
    let o: Vec<usize> = reqs.iter().map(|r| r.output_len).collect();
    let (plo, phi) = SHAREGPT_PROMPT_RANGE;
    let (olo, ohi) = SHAREGPT_OUTPUT_RANGE;
    assert!(p.iter().all(|&x| (plo..=phi).contains(&x)));
    assert!(o.iter().all(|&x| (olo..=ohi).contains(&x)));
    let median = |v: &[usize]| {
        let mut v = v.to_vec();
        v.sort_unstable();
        v[v.len() / 2]
    };
    // Log-uniform: median near the geometric mean (181, 91), far below the midpoint.
    let (pm, om) = (median(&p), median(&o));
    assert!((150..=215).contains(&pm), "prompt median {pm}");
    assert!((75..=110).contains(&om), "output median {om}");
    // Both tails are populated.
    assert!(p.iter().any(|&x| x < 40) && p.iter().any(|&x| x > 900));
    assert!(o.iter().any(|&x| x < 20) && o.iter().any(|&x| x > 450));
}

#[test]
fn sharegpt_ranges_can_be_narrowed_and_bad_ranges_are_refused() {
    let mut a = args(WorkloadKind::Sharegpt, 500, 4);
    a.prompt_len_range = parse_range("32:512").unwrap();
    a.output_len_range = parse_range("32:256").unwrap();
    let reqs = generate(&a, &WordTokenizer);
    assert!(reqs.iter().all(|r| (32..=512).contains(&r.prompt_len())));
    assert!(reqs.iter().all(|r| (32..=256).contains(&r.output_len)));
    assert!(reqs.iter().any(|r| r.prompt_len() > 450) && reqs.iter().any(|r| r.output_len < 40));
    for bad in ["512", "0:10", "10:5", "a:b", "5:"] {
        assert!(parse_range(bad).is_err(), "{bad} accepted");
    }
}

#[test]
fn shared_prefix_shares_one_system_prompt() {
    let reqs = generate(&args(WorkloadKind::SharedPrefix, 8, 5), &WordTokenizer);
    let sys = reqs[0].system.clone().expect("a system prompt");
    assert_eq!(sys.token_ids.len(), 512);
    for r in &reqs {
        assert_eq!(r.system.as_ref(), Some(&sys));
        assert_eq!(r.prompt_len(), 552);
        assert_eq!(&r.token_ids()[..512], &sys.token_ids[..]);
        assert!(r.completion_text().starts_with(&sys.text));
    }
    // The system prompt depends on the workload seed only, not on which requests are drawn.
    let warm = corvid_bench::workload::generate_n(
        &args(WorkloadKind::SharedPrefix, 8, 5),
        2,
        99,
        &WordTokenizer,
    );
    assert_eq!(warm[0].system.as_ref(), Some(&sys));
    assert_ne!(warm[0].user, reqs[0].user);
}

#[test]
fn real_tokenizer_prompts_hit_the_target_count() {
    let path = corvid_model::default_model::default_model_path();
    let test = "real_tokenizer_prompts_hit_the_target_count";
    let Some(path) = corvid_model::default_model::installed_or_skip(test, path) else {
        return;
    };
    let tok = corvid_model::load_tokenizer(&path).expect("tokenizer");
    let mut a = args(WorkloadKind::Fixed, 5, 11);
    a.input_len = 256;
    for r in generate(&a, &tok) {
        assert_eq!(r.user.token_ids.len(), 256);
        let re = TokenCounter::encode(&tok, &r.user.text).len();
        assert!(re.abs_diff(256) <= 2, "re-encoded to {re} tokens");
    }
}
