//! Distribution through krew, with the real krew built from its module: the
//! committed manifest is well-formed and matches the crate, the release script
//! produces an archive and manifest that krew's validator accepts, and
//! `kubectl krew install` makes `kubectl kms-sts` work with nothing but krew's
//! bin directory on PATH; `uninstall` removes it.

mod support;

use std::path::Path;
use std::process::Command;

use support::{assert_exit, krew_bin, kubernetes_bin, run, scratch_dir, stderr, stdout};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn committed_manifest_follows_krew_rules() {
    let text = std::fs::read_to_string(repo().join("krew/kms-sts.yaml")).unwrap();
    let manifest: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
    assert_eq!(
        manifest["apiVersion"],
        "krew.googlecontainertools.github.com/v1alpha2"
    );
    assert_eq!(manifest["kind"], "Plugin");
    assert_eq!(manifest["metadata"]["name"], "kms-sts");
    let spec = &manifest["spec"];
    assert_eq!(spec["version"], format!("v{}", env!("CARGO_PKG_VERSION")));
    assert!(spec["shortDescription"].as_str().unwrap().len() <= 50);
    let description = spec["description"].as_str().unwrap();
    assert!(
        description.lines().all(|line| line.len() <= 80),
        "{description}"
    );
    assert!(
        !description.contains("kubectl kms-sts "),
        "no usage examples"
    );
    let caveats = spec["caveats"].as_str().unwrap();
    assert!(
        caveats.contains("istioctl") && caveats.contains("RBAC") && caveats.contains("completion")
    );
    assert!(spec["homepage"].as_str().unwrap().starts_with("https://"));

    let platforms = spec["platforms"].as_array().unwrap();
    let mut seen = Vec::new();
    for platform in platforms {
        let labels = platform["selector"]["matchLabels"].as_object().unwrap();
        assert_eq!(labels.len(), 2, "selector on os and arch only");
        let (os, arch) = (
            labels["os"].as_str().unwrap(),
            labels["arch"].as_str().unwrap(),
        );
        seen.push(format!("{os}/{arch}"));
        let sha = platform["sha256"].as_str().unwrap();
        assert!(
            sha.len() == 64
                && sha
                    .chars()
                    .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)),
            "{sha}"
        );
        let bin = platform["bin"].as_str().unwrap();
        assert_eq!(
            bin,
            if os == "windows" {
                "kubectl-kms_sts.exe"
            } else {
                "kubectl-kms_sts"
            }
        );
        let files: Vec<&str> = platform["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["from"].as_str().unwrap())
            .collect();
        assert!(
            files.contains(&"LICENSE") && files.contains(&bin),
            "{files:?}"
        );
        assert!(
            platform["uri"]
                .as_str()
                .unwrap()
                .contains(&format!("v{}", env!("CARGO_PKG_VERSION")))
        );
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), platforms.len(), "one platform per os/arch");
    assert!(seen.contains(&"linux/amd64".to_owned()), "{seen:?}");

    let validate = run(Command::new(krew_bin().join("validate-krew-manifest"))
        .arg("-manifest")
        .arg(repo().join("krew/kms-sts.yaml"))
        .arg("-skip-install"));
    assert_exit(&validate, 0);
}

#[test]
fn release_archive_installs_and_uninstalls_with_real_krew() {
    let out_dir = scratch_dir("release");
    let release = run(Command::new(repo().join("scripts/release"))
        .args([
            "--base-url",
            "https://downloads.example.invalid/v0",
            "--homepage",
            "https://example.invalid/kms-sts",
        ])
        .arg("--out")
        .arg(&out_dir));
    assert_exit(&release, 0);
    let manifest = out_dir.join("kms-sts.yaml");
    assert_eq!(stdout(&release).trim(), manifest.display().to_string());
    let archive = std::fs::read_dir(&out_dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with(".tar.gz"))
        .expect("an archive");
    let listing = run(Command::new("tar").arg("-tzf").arg(&archive));
    assert_eq!(stdout(&listing), "kubectl-kms_sts\nLICENSE\n");

    let validate = run(Command::new(krew_bin().join("validate-krew-manifest"))
        .arg("-manifest")
        .arg(&manifest)
        .arg("-skip-install"));
    assert_exit(&validate, 0);

    // kubectl finds krew as a plugin named kubectl-krew.
    let tools = scratch_dir("krew-tools");
    std::fs::copy(krew_bin().join("krew"), tools.join("kubectl-krew")).unwrap();
    let krew_root = scratch_dir("krew-root");
    // A local, empty plugin index: krew wants one to exist, and the public
    // index cannot be fetched here; --manifest installs do not read it.
    let index = krew_root.join("index/default");
    std::fs::create_dir_all(index.join("plugins")).unwrap();
    let init = run(Command::new("git").args(["init", "-q"]).arg(&index));
    assert_exit(&init, 0);
    let kubectl = |args: &[&str], path: &std::ffi::OsStr| {
        let mut command = Command::new(kubernetes_bin().join("kubectl"));
        command
            .args(args)
            .env("KREW_ROOT", &krew_root)
            .env("PATH", path)
            .env_remove("KUBECONFIG");
        command
    };
    let install_path =
        std::env::join_paths([tools.as_path(), Path::new("/usr/bin"), Path::new("/bin")]).unwrap();
    let mut install = kubectl(&["krew", "install"], &install_path);
    install
        .arg(format!("--manifest={}", manifest.display()))
        .arg(format!("--archive={}", archive.display()));
    let out = run(&mut install);
    assert_exit(&out, 0);
    assert!(
        stderr(&out).contains("Installed plugin: kms-sts"),
        "{}",
        stderr(&out)
    );

    // Only krew's bin directory on PATH: kubectl finds the plugin there.
    let krew_path = std::env::join_paths([krew_root.join("bin")]).unwrap();
    let out = run(&mut kubectl(&["kms-sts", "--help"], &krew_path));
    assert_exit(&out, 0);
    assert!(
        stdout(&out).contains("Usage: kubectl kms-sts"),
        "{}",
        stdout(&out)
    );
    assert!(krew_root.join("bin/kubectl-kms_sts").exists());

    let out = run(&mut kubectl(
        &["krew", "uninstall", "kms-sts"],
        &install_path,
    ));
    assert_exit(&out, 0);
    assert!(!krew_root.join("bin/kubectl-kms_sts").exists());
    let out = run(&mut kubectl(&["kms-sts", "--help"], &krew_path));
    assert_ne!(out.status.code(), Some(0));
}
