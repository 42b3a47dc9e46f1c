//! Distribution through krew, with the real krew built from its module: the
//! committed manifest is well-formed and matches the crate; one snapshot
//! release (`scripts/release --unoptimized`: GoReleaser and the release
//! pipeline, without the size optimizations that take most of its time)
//! builds all five krew platforms, whose archives, checksums and manifest
//! agree and pass krew's validator; the macOS binaries are Mach-O
//! executables for their architecture that load only the system library and
//! carry a valid ad-hoc signature on arm64; each binary carries the list of
//! crates it links (cargo-auditable) and each archive has a CycloneDX SBOM in
//! checksums.txt, both matching Cargo.lock; `kubectl krew install` of the
//! Linux archive makes `kubectl kms-sts` work with nothing but krew's bin
//! directory on PATH, and `uninstall` removes it; the release workflow passes
//! actionlint.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use sha2::{Digest, Sha256};
use support::{
    actionlint_bin, assert_exit, install_as, krew_bin, kubernetes_bin, release_tools_bin, run,
    scratch_dir, stderr, stdout,
};

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
        // Without `files`, krew installs the whole archive (binary and
        // LICENSE, as the install test below checks); with it, both.
        if let Some(files) = platform["files"].as_array() {
            let from: Vec<&str> = files.iter().map(|f| f["from"].as_str().unwrap()).collect();
            assert!(from.contains(&"LICENSE") && from.contains(&bin), "{from:?}");
        }
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
    assert_eq!(seen, KREW_PLATFORMS, "all five platforms krew knows");

    let validate = run(Command::new(krew_bin().join("validate-krew-manifest"))
        .arg("-manifest")
        .arg(repo().join("krew/kms-sts.yaml"))
        .arg("-skip-install"));
    assert_exit(&validate, 0);
}

/// The platforms krew installs on, as `os/arch`, sorted.
const KREW_PLATFORMS: [&str; 5] = [
    "darwin/amd64",
    "darwin/arm64",
    "linux/amd64",
    "linux/arm64",
    "windows/amd64",
];

const HOMEPAGE: &str = "https://example.invalid/kms-sts";
const DOWNLOAD_URL: &str = "https://downloads.example.invalid/kubectl-kms-sts";

/// What one `scripts/release` run produced: its output directory, the
/// manifest it printed, and the archive of each `os/arch`.
struct Snapshot {
    dir: PathBuf,
    manifest: PathBuf,
    archives: BTreeMap<String, PathBuf>,
}

/// The snapshot release, built once for all the tests here: five builds take
/// minutes even unoptimized.
fn snapshot() -> &'static Snapshot {
    static SNAPSHOT: OnceLock<Snapshot> = OnceLock::new();
    SNAPSHOT.get_or_init(|| {
        let dir = scratch_dir("release");
        let release = run(Command::new(repo().join("scripts/release"))
            .args(["--homepage", HOMEPAGE, "--download-url", DOWNLOAD_URL])
            .arg("--unoptimized")
            .arg("--out")
            .arg(&dir));
        assert_exit(&release, 0);
        let manifest = PathBuf::from(stdout(&release).trim());
        assert_eq!(manifest, dir.join("kms-sts.yaml"));
        let version = env!("CARGO_PKG_VERSION");
        let archives = KREW_PLATFORMS
            .iter()
            .map(|platform| {
                let (os, arch) = platform.split_once('/').unwrap();
                let ext = if os == "windows" { "zip" } else { "tar.gz" };
                let name = format!("kubectl-kms-sts_v{version}_{os}_{arch}.{ext}");
                let path = dir.join(&name);
                assert!(path.exists(), "{name} in {}", dir.display());
                (platform.to_string(), path)
            })
            .collect();
        Snapshot {
            dir,
            manifest,
            archives,
        }
    })
}

/// The members of an archive, with their bytes.
fn unpack(archive: &Path) -> BTreeMap<String, Vec<u8>> {
    let into = scratch_dir("unpacked");
    let out = if archive.extension().is_some_and(|ext| ext == "zip") {
        run(Command::new("python3")
            .args(["-m", "zipfile", "-e"])
            .arg(archive)
            .arg(&into))
    } else {
        run(Command::new("tar")
            .arg("-xzf")
            .arg(archive)
            .arg("-C")
            .arg(&into))
    };
    assert_exit(&out, 0);
    std::fs::read_dir(&into)
        .unwrap()
        .flatten()
        .map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            (name, std::fs::read(entry.path()).unwrap())
        })
        .collect()
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

#[test]
fn snapshot_release_builds_all_five_platforms_with_a_valid_manifest() {
    let snapshot = snapshot();
    let checksums = std::fs::read_to_string(snapshot.dir.join("checksums.txt")).unwrap();
    let listed: BTreeMap<&str, &str> = checksums
        .lines()
        .map(|line| {
            let (sum, name) = line.split_once("  ").unwrap();
            (name, sum)
        })
        .collect();
    let text = std::fs::read_to_string(&snapshot.manifest).unwrap();
    let manifest: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
    assert_eq!(manifest["metadata"]["name"], "kms-sts");
    assert_eq!(manifest["spec"]["homepage"], HOMEPAGE);
    assert_eq!(
        manifest["spec"]["version"],
        format!("v{}", env!("CARGO_PKG_VERSION"))
    );
    let platforms = manifest["spec"]["platforms"].as_array().unwrap();
    assert_eq!(platforms.len(), 5);

    // (object format, architecture) of each platform's binary.
    let expected = BTreeMap::from([
        (
            "darwin/amd64",
            (object::BinaryFormat::MachO, object::Architecture::X86_64),
        ),
        (
            "darwin/arm64",
            (object::BinaryFormat::MachO, object::Architecture::Aarch64),
        ),
        (
            "linux/amd64",
            (object::BinaryFormat::Elf, object::Architecture::X86_64),
        ),
        (
            "linux/arm64",
            (object::BinaryFormat::Elf, object::Architecture::Aarch64),
        ),
        (
            "windows/amd64",
            (object::BinaryFormat::Pe, object::Architecture::X86_64),
        ),
    ]);
    for (platform, archive) in &snapshot.archives {
        let name = archive.file_name().unwrap().to_str().unwrap();
        let bytes = std::fs::read(archive).unwrap();
        let sum = sha256_hex(&bytes);
        assert_eq!(
            listed.get(name),
            Some(&sum.as_str()),
            "{name} in checksums.txt"
        );

        let (os, arch) = platform.split_once('/').unwrap();
        let entry = platforms
            .iter()
            .find(|p| {
                p["selector"]["matchLabels"]["os"] == os
                    && p["selector"]["matchLabels"]["arch"] == arch
            })
            .unwrap_or_else(|| panic!("{platform} in the manifest"));
        assert_eq!(entry["sha256"], sum, "{platform}");
        let version = env!("CARGO_PKG_VERSION");
        assert_eq!(entry["uri"], format!("{DOWNLOAD_URL}/v{version}/{name}"));
        let bin = if os == "windows" {
            "kubectl-kms_sts.exe"
        } else {
            "kubectl-kms_sts"
        };
        assert_eq!(entry["bin"], bin, "{platform}");

        let members = unpack(archive);
        assert_eq!(
            members.keys().map(String::as_str).collect::<Vec<_>>(),
            {
                let mut names = vec!["LICENSE", bin];
                names.sort();
                names
            },
            "{name}"
        );
        let binary = object::File::parse(members[bin].as_slice()).unwrap();
        use object::Object;
        assert_eq!(
            (binary.format(), binary.architecture()),
            expected[platform.as_str()],
            "{platform}"
        );
    }

    let validate = run(Command::new(krew_bin().join("validate-krew-manifest"))
        .arg("-manifest")
        .arg(&snapshot.manifest)
        .arg("-skip-install"));
    assert_exit(&validate, 0);
}

#[test]
fn macos_binaries_load_only_the_system_library_and_arm64_is_signed() {
    use object::macho;
    use object::read::macho::{LoadCommandVariant, MachHeader};
    let snapshot = snapshot();
    // The oldest macOS each binary says it loads on (major, minor).
    for (platform, oldest) in [("darwin/amd64", (10, 12)), ("darwin/arm64", (11, 0))] {
        let members = unpack(&snapshot.archives[platform]);
        let data = members["kubectl-kms_sts"].as_slice();
        let header = macho::MachHeader64::<object::Endianness>::parse(data, 0).unwrap();
        let endian = header.endian().unwrap();
        assert_eq!(header.filetype(endian), macho::MH_EXECUTE, "{platform}");
        let mut libraries = Vec::new();
        let mut minimum = None;
        let mut signature = None;
        let mut commands = header.load_commands(endian, data, 0).unwrap();
        while let Some(command) = commands.next().unwrap() {
            match command.variant().unwrap() {
                LoadCommandVariant::Dylib(dylib) => {
                    let name = command.string(endian, dylib.dylib.name).unwrap();
                    libraries.push(String::from_utf8_lossy(name).into_owned());
                }
                LoadCommandVariant::BuildVersion(build) => {
                    minimum = Some(build.minos.get(endian));
                }
                LoadCommandVariant::VersionMin(version) => {
                    minimum = Some(version.version.get(endian));
                }
                LoadCommandVariant::LinkeditData(linkedit)
                    if command.cmd() == macho::LC_CODE_SIGNATURE =>
                {
                    signature = Some((linkedit.dataoff.get(endian), linkedit.datasize.get(endian)));
                }
                _ => {}
            }
        }
        assert!(
            libraries.contains(&"/usr/lib/libSystem.B.dylib".to_owned())
                && libraries
                    .iter()
                    .all(|lib| lib.starts_with("/usr/lib/lib") && !lib.contains(".framework")),
            "{platform} loads {libraries:?}"
        );
        let minimum = minimum.unwrap_or_else(|| panic!("{platform} names its oldest macOS"));
        assert_eq!(
            (minimum >> 16, (minimum >> 8) & 0xff),
            oldest,
            "{platform} minimum macOS"
        );
        if platform == "darwin/arm64" {
            // Apple Silicon runs only signed code; the linker signs ad hoc.
            let (offset, size) = signature.unwrap_or_else(|| panic!("{platform} is signed"));
            let blob = &data[offset as usize..(offset + size) as usize];
            let checked = check_code_directory(data, blob);
            assert!(checked > 0, "{platform}: {checked} pages hashed");

            let path = scratch_dir("signed").join("kubectl-kms_sts");
            std::fs::write(&path, data).unwrap();
            let rcodesign = release_tools_bin().join("rcodesign");
            let info = run(Command::new(&rcodesign)
                .arg("print-signature-info")
                .arg(&path));
            assert_exit(&info, 0);
            assert!(
                stdout(&info).contains("ADHOC | LINKER_SIGNED"),
                "{}",
                stdout(&info)
            );
            // rcodesign's own verifier finds nothing wrong but the absence of
            // a cryptographic (Developer ID) signature, which ad hoc means.
            let verify = run(Command::new(&rcodesign).arg("verify").arg(&path));
            let problems: Vec<String> = stdout(&verify)
                .lines()
                .chain(stderr(&verify).lines())
                .filter(|line| !line.trim().is_empty())
                .filter(|line| !line.contains("verify command is known to be buggy"))
                .filter(|line| !line.starts_with("Error: problems reported"))
                .map(str::to_owned)
                .collect();
            assert_eq!(
                problems,
                ["no cryptographic signature present"],
                "{problems:?}"
            );
        }
    }
}

/// Checks an ad-hoc signature as the loader does: every page of the binary
/// up to the CodeDirectory's code limit hashes to its slot. Returns the
/// number of pages checked.
fn check_code_directory(binary: &[u8], superblob: &[u8]) -> usize {
    let be32 = |bytes: &[u8], at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap());
    assert_eq!(
        be32(superblob, 0),
        0xfade_0cc0,
        "an embedded signature superblob"
    );
    let count = be32(superblob, 8) as usize;
    let directory = (0..count)
        .map(|i| be32(superblob, 12 + 8 * i + 4) as usize)
        .find(|&at| be32(superblob, at) == 0xfade_0c02)
        .map(|at| &superblob[at..])
        .expect("a CodeDirectory");
    let hash_offset = be32(directory, 16) as usize;
    let code_slots = be32(directory, 28) as usize;
    let code_limit = be32(directory, 32) as usize;
    let (hash_size, hash_type, page_shift) = (directory[36], directory[37], directory[39]);
    assert_eq!((hash_size, hash_type), (32, 2), "SHA-256 slots");
    let page = 1usize << page_shift;
    assert_eq!(code_slots, code_limit.div_ceil(page));
    for slot in 0..code_slots {
        let start = slot * page;
        let end = (start + page).min(code_limit);
        let expected = &directory[hash_offset + slot * 32..hash_offset + (slot + 1) * 32];
        assert_eq!(
            Sha256::digest(&binary[start..end]).as_slice(),
            expected,
            "page {slot}"
        );
    }
    code_slots
}

#[test]
fn release_archive_installs_and_uninstalls_with_real_krew() {
    let snapshot = snapshot();
    let manifest = &snapshot.manifest;
    let archive = &snapshot.archives["linux/amd64"];

    // kubectl finds krew as a plugin named kubectl-krew.
    let tools = scratch_dir("krew-tools");
    install_as(&krew_bin().join("krew"), &tools.join("kubectl-krew"));
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
    let installed = krew_root.join(format!(
        "store/kms-sts/v{}/LICENSE",
        env!("CARGO_PKG_VERSION")
    ));
    assert!(installed.exists(), "{} installed", installed.display());

    let out = run(&mut kubectl(
        &["krew", "uninstall", "kms-sts"],
        &install_path,
    ));
    assert_exit(&out, 0);
    assert!(!krew_root.join("bin/kubectl-kms_sts").exists());
    let out = run(&mut kubectl(&["kms-sts", "--help"], &krew_path));
    assert_ne!(out.status.code(), Some(0));
}

#[test]
fn release_workflow_passes_actionlint() {
    let out = run(Command::new(actionlint_bin().join("actionlint"))
        .arg("-color=false")
        .arg(repo().join(".github/workflows/release.yml")));
    assert_exit(&out, 0);
    assert_eq!(stdout(&out), "", "{}", stderr(&out));
}

/// Cargo.lock's packages, `(name, version)` to the SHA-256 it records
/// (none for this crate, which comes from the checkout).
fn locked_packages() -> BTreeMap<(String, String), Option<String>> {
    let text = std::fs::read_to_string(repo().join("Cargo.lock")).unwrap();
    text.split("[[package]]")
        .skip(1)
        .map(|block| {
            let field = |key: &str| {
                block.lines().find_map(|line| {
                    let value = line.strip_prefix(key)?.strip_prefix(" = \"")?;
                    Some(value.trim_end_matches('"').to_owned())
                })
            };
            (
                (field("name").unwrap(), field("version").unwrap()),
                field("checksum"),
            )
        })
        .collect()
}

/// Packages as `(name, version)`.
type Packages = BTreeSet<(String, String)>;

/// What cargo resolves from Cargo.lock for the binary on one platform.
struct Resolved {
    /// Linked into the binary: this crate and its normal dependencies,
    /// without proc macros and what only they use.
    linked: Packages,
    /// Everything its build uses: build scripts' dependencies and proc
    /// macros too, never dev-dependencies.
    built_with: Packages,
}

fn resolved_packages(triple: &str) -> Resolved {
    let out = run(Command::new("cargo")
        .args(["metadata", "--locked", "--format-version", "1"])
        .args(["--filter-platform", triple])
        .arg("--manifest-path")
        .arg(repo().join("Cargo.toml")));
    assert_exit(&out, 0);
    let metadata: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let packages: BTreeMap<&str, &serde_json::Value> = metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|package| (package["id"].as_str().unwrap(), package))
        .collect();
    let is_proc_macro = |id: &str| {
        packages[id]["targets"]
            .as_array()
            .unwrap()
            .iter()
            .any(|target| target["kind"][0] == "proc-macro")
    };
    let nodes: BTreeMap<&str, &serde_json::Value> = metadata["resolve"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|node| (node["id"].as_str().unwrap(), node))
        .collect();
    let root = metadata["resolve"]["root"].as_str().unwrap();
    // Every package reachable from the root through edges that `follows`
    // accepts, given the edge's kind (null for normal, "build" or "dev").
    let walk = |follows: &dyn Fn(&serde_json::Value, &str) -> bool| {
        let mut pending = vec![root];
        let mut seen = BTreeSet::new();
        while let Some(id) = pending.pop() {
            if !seen.insert(id) {
                continue;
            }
            for dep in nodes[id]["deps"].as_array().unwrap() {
                let dep_id = dep["pkg"].as_str().unwrap();
                let kinds = dep["dep_kinds"].as_array().unwrap();
                if kinds.iter().any(|kind| follows(&kind["kind"], dep_id)) {
                    pending.push(dep_id);
                }
            }
        }
        seen.iter()
            .map(|id| {
                let package = packages[id];
                (
                    package["name"].as_str().unwrap().to_owned(),
                    package["version"].as_str().unwrap().to_owned(),
                )
            })
            .collect::<Packages>()
    };
    Resolved {
        linked: walk(&|kind, dep| kind.is_null() && !is_proc_macro(dep)),
        built_with: walk(&|kind, _| kind != "dev"),
    }
}

/// The Rust target each krew platform's binary is built for.
fn release_target(platform: &str) -> &'static str {
    match platform {
        "darwin/amd64" => "x86_64-apple-darwin",
        "darwin/arm64" => "aarch64-apple-darwin",
        "linux/amd64" => "x86_64-unknown-linux-gnu",
        "linux/arm64" => "aarch64-unknown-linux-gnu",
        "windows/amd64" => "x86_64-pc-windows-gnu",
        other => panic!("no release target for {other}"),
    }
}

#[test]
fn each_binary_carries_its_dependency_list_and_each_archive_an_sbom_both_from_the_lock_file() {
    let snapshot = snapshot();
    let locked = locked_packages();
    let checksums = std::fs::read_to_string(snapshot.dir.join("checksums.txt")).unwrap();
    let crate_version = env!("CARGO_PKG_VERSION");
    for (platform, archive) in &snapshot.archives {
        let Resolved { linked, built_with } = resolved_packages(release_target(platform));

        // The dependency list cargo-auditable embedded, read back out of the
        // binary as a scanner would.
        let members = unpack(archive);
        let (bin, bytes) = members
            .iter()
            .find(|(name, _)| name.starts_with("kubectl-kms_sts"))
            .unwrap();
        let path = scratch_dir("audited").join(bin);
        std::fs::write(&path, bytes).unwrap();
        let out = run(Command::new(release_tools_bin().join("rust-audit-info")).arg(&path));
        assert_exit(&out, 0);
        let audit: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let audited = audit["packages"].as_array().unwrap();
        let root: Vec<_> = audited
            .iter()
            .filter(|package| package["root"] == true)
            .collect();
        assert_eq!(root.len(), 1, "{platform}: one root package");
        assert_eq!(root[0]["name"], "kubectl-kms-sts", "{platform}");
        assert_eq!(root[0]["version"], crate_version, "{platform}");
        let key = |package: &serde_json::Value| {
            (
                package["name"].as_str().unwrap().to_owned(),
                package["version"].as_str().unwrap().to_owned(),
            )
        };
        for package in audited {
            assert!(
                built_with.contains(&key(package)) && locked.contains_key(&key(package)),
                "{platform}: {:?} is in Cargo.lock and built for this platform",
                key(package)
            );
        }
        let runtime: Packages = audited
            .iter()
            .filter(|package| package["kind"] != "build")
            .map(key)
            .collect();
        assert!(
            linked.is_subset(&runtime),
            "{platform}: the binary does not name {:?}",
            linked.difference(&runtime).collect::<Vec<_>>()
        );

        // The SBOM beside the archive, listed in checksums.txt.
        let archive_name = archive.file_name().unwrap().to_str().unwrap();
        let sbom_name = format!("{archive_name}.cdx.json");
        let sbom_bytes = std::fs::read(snapshot.dir.join(&sbom_name))
            .unwrap_or_else(|e| panic!("{sbom_name}: {e}"));
        assert!(
            checksums
                .lines()
                .any(|line| line == format!("{}  {sbom_name}", sha256_hex(&sbom_bytes))),
            "{sbom_name} in checksums.txt:\n{checksums}"
        );
        let sbom: serde_json::Value = serde_json::from_slice(&sbom_bytes).unwrap();
        assert_eq!(sbom["bomFormat"], "CycloneDX", "{sbom_name}");
        assert_eq!(
            sbom["metadata"]["component"]["name"], "kubectl-kms-sts",
            "{sbom_name}"
        );
        assert_eq!(
            sbom["metadata"]["component"]["version"], crate_version,
            "{sbom_name}"
        );
        let mut listed = BTreeSet::new();
        for component in sbom["components"].as_array().unwrap() {
            let name = component["name"].as_str().unwrap().to_owned();
            let version = component["version"].as_str().unwrap().to_owned();
            assert_eq!(
                component["purl"],
                format!("pkg:cargo/{name}@{version}"),
                "{sbom_name}"
            );
            let key = (name, version);
            assert!(
                built_with.contains(&key),
                "{sbom_name}: {key:?} is built for this platform"
            );
            let checksum = locked
                .get(&key)
                .unwrap_or_else(|| panic!("{sbom_name}: {key:?} in Cargo.lock"));
            let hashes = component["hashes"].as_array().unwrap();
            assert_eq!(
                hashes[0]["content"].as_str(),
                checksum.as_deref(),
                "{sbom_name}: {key:?} has Cargo.lock's SHA-256"
            );
            listed.insert(key);
        }
        let dependencies: BTreeSet<_> = linked
            .iter()
            .filter(|(name, _)| name != "kubectl-kms-sts")
            .cloned()
            .collect();
        assert!(
            dependencies.is_subset(&listed),
            "{sbom_name} misses {:?}",
            dependencies.difference(&listed).collect::<Vec<_>>()
        );
    }
}

#[test]
fn release_binary_says_which_commit_it_was_built_from_and_when() {
    let snapshot = snapshot();
    let git = |format: &[&str]| {
        let out = run(Command::new("git")
            .arg("-C")
            .arg(repo())
            .args(["show", "-s"])
            .args(format)
            .env("TZ", "UTC"));
        assert_exit(&out, 0);
        stdout(&out).trim().to_owned()
    };
    let commit = git(&["--format=%H"]);
    // The release sets the build date to the commit's, so a rebuild of a
    // tag is the same binary.
    let commit_date = git(&["--format=%cd", "--date=format-local:%Y-%m-%dT%H:%M:%SZ"]);
    let members = unpack(&snapshot.archives["linux/amd64"]);
    let path = scratch_dir("released").join("kubectl-kms_sts");
    std::fs::write(&path, &members["kubectl-kms_sts"]).unwrap();
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let out = run(Command::new(&path).args(["version", "--client", "-o", "json"]));
    assert_exit(&out, 0);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["build"]["commit"], commit.as_str(), "{json}");
    assert_eq!(json["build"]["buildDate"], commit_date.as_str(), "{json}");
    assert_eq!(
        json["build"]["target"], "x86_64-unknown-linux-gnu",
        "{json}"
    );
}
