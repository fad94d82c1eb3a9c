//! The AFL driver of corvid's fuzz targets: `corvid-fuzz-afl TARGET` runs one target of
//! `corvid_fuzz::TARGETS` in AFL's persistent mode (one binary, one link, for all of them).

fn main() {
    let name = std::env::args().nth(1).unwrap_or_default();
    let Some(target) = corvid_fuzz::TARGETS.iter().find(|t| t.name == name) else {
        let names: Vec<_> = corvid_fuzz::TARGETS.iter().map(|t| t.name).collect();
        eprintln!("usage: corvid-fuzz-afl TARGET (one of {})", names.join(", "));
        std::process::exit(2);
    };
    // Loads what the target keeps for the whole process (tokenizers, compiled templates)
    // before AFL's fork server starts, so each forked child starts warm.
    (target.run)(b"");
    afl::fuzz!(|data: &[u8]| (target.run)(data));
}
