//! Replays every committed fuzz input — the seeds in `fuzz/corpus/TARGET` and the inputs
//! that once crashed in `fuzz/regressions/TARGET` — through its target's body, without
//! AFL: a crash fixed once stays fixed.

use std::path::Path;

fn inputs(kind: &str, target: &str) -> Vec<std::path::PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(kind)
        .join(target);
    match std::fs::read_dir(&dir) {
        Ok(entries) => entries
            .map(|e| e.expect("readable folder").path())
            .collect(),
        Err(_) => Vec::new(),
    }
}

#[test]
fn every_committed_input_runs_clean() {
    for target in corvid_fuzz::TARGETS {
        let seeds = inputs("corpus", target.name);
        assert!(
            !seeds.is_empty(),
            "fuzz/corpus/{} has no seeds",
            target.name
        );
        for path in seeds.iter().chain(&inputs("regressions", target.name)) {
            let data = std::fs::read(path).expect("readable input");
            eprintln!("{}: {}", target.name, path.display());
            (target.run)(&data);
        }
    }
}
