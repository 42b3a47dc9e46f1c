//! `kubectl-kms_sts`: the executable kubectl finds for `kubectl kms-sts`.
//! Parsing, the work and error reporting live in the library; this file only
//! hands the process over to it and turns its outcome into an exit code.

fn main() -> std::process::ExitCode {
    kms_sts::run_from_env()
}
