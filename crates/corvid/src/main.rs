//! The native `corvid` binary: the command line of [`corvid::run`].

fn main() {
    std::process::exit(corvid::run(std::env::args_os()));
}
