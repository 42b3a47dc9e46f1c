//! What `version` says about the binary: the commit it was built from, the
//! build date, the target and the compiler, so that a bug report names the
//! exact build. Each is handed to the crate as a compile-time variable.
//!
//! The commit comes from git in a checkout, else from the `.cargo_vcs_info.json`
//! that `cargo package` writes into a published crate. The build date is
//! `SOURCE_DATE_EPOCH` where the builder sets it (the release does, to the
//! commit's time, so that a rebuild of a tag gives the same binary), else now.

use std::path::Path;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

fn main() {
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let root = Path::new(&manifest_dir);

    let commit = git(root, &["rev-parse", "HEAD"])
        .or_else(|| packaged_commit(root))
        .unwrap_or_else(|| "unknown".to_owned());
    // Only existing paths are named: cargo reruns a build script on every
    // build for a path that is missing, which would recompile the crate
    // each time with a new build date.
    println!("cargo:rerun-if-changed=build.rs");
    for path in git_files_naming_the_commit(root) {
        println!("cargo:rerun-if-changed={path}");
    }
    if root.join(".cargo_vcs_info.json").exists() {
        println!("cargo:rerun-if-changed=.cargo_vcs_info.json");
    }

    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
    let build_epoch = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|value| value.trim().parse::<i64>().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |elapsed| elapsed.as_secs() as i64)
        });

    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    let rustc_version = Command::new(rustc)
        .arg("--version")
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".to_owned());

    let target = std::env::var("TARGET").expect("cargo sets TARGET");
    println!("cargo:rustc-env=KMS_STS_BUILD_COMMIT={commit}");
    println!(
        "cargo:rustc-env=KMS_STS_BUILD_DATE={}",
        rfc3339_utc(build_epoch)
    );
    println!("cargo:rustc-env=KMS_STS_BUILD_TARGET={target}");
    println!("cargo:rustc-env=KMS_STS_BUILD_RUSTC={rustc_version}");
}

/// One line of git's output in `dir`, when it is a checkout and git answers.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    (out.status.success() && !text.is_empty()).then_some(text)
}

/// The files whose change means another commit is checked out: HEAD, the
/// branch it names and the packed refs, those that exist.
fn git_files_naming_the_commit(root: &Path) -> Vec<String> {
    let mut refs = vec!["HEAD".to_owned(), "packed-refs".to_owned()];
    if let Some(branch) = git(root, &["symbolic-ref", "-q", "HEAD"]) {
        refs.push(branch);
    }
    refs.iter()
        .filter_map(|name| {
            git(
                root,
                &["rev-parse", "--path-format=absolute", "--git-path", name],
            )
        })
        .filter(|path| Path::new(path).exists())
        .collect()
}

/// The commit `cargo package` recorded in a published crate.
fn packaged_commit(root: &Path) -> Option<String> {
    let text = std::fs::read_to_string(root.join(".cargo_vcs_info.json")).ok()?;
    let after = text.split("\"sha1\"").nth(1)?;
    let value = after.split('"').nth(1)?;
    (!value.is_empty()).then(|| value.to_owned())
}

/// Seconds since the epoch as `YYYY-MM-DDTHH:MM:SSZ` (the proleptic
/// Gregorian calendar, as every RFC 3339 date is).
fn rfc3339_utc(epoch: i64) -> String {
    let (days, seconds) = (epoch.div_euclid(86_400), epoch.rem_euclid(86_400));
    // Days since 1970-01-01 to a civil date, counting in 400-year eras that
    // start on March 1st so that the leap day ends each year.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        seconds / 3_600,
        seconds % 3_600 / 60,
        seconds % 60
    )
}
