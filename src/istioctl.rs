//! Running `istioctl kube-inject`: the one external program the plugin needs.
//! It is fed the cluster's own injector configuration (the ConfigMaps
//! `istio-sidecar-injector` and `istio`, or `istio-sidecar-injector-REV` and
//! `istio-REV` of a revisioned control plane), written to a private
//! temporary directory, so the sidecar matches the mesh that runs there.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use sha2::{Digest, Sha256};
use tokio::process::Command;

use crate::cluster::Target;
use crate::error::{Error, Result};
use crate::files::private_files::{self, Existing};

/// The injector configuration of one revision, as the cluster's ConfigMaps
/// hold it.
#[derive(Debug)]
pub struct InjectorConfig {
    /// `default`, or the control plane's revision.
    pub revision: String,
    /// `istio-sidecar-injector[-REV]` ConfigMap, key `config`.
    pub template: String,
    /// `istio-sidecar-injector[-REV]` ConfigMap, key `values`.
    pub values: String,
    /// `istio[-REV]` ConfigMap, key `mesh`.
    pub mesh: String,
    /// The two ConfigMaps as `NAME@RESOURCEVERSION,NAME@RESOURCEVERSION`:
    /// while both still carry these versions, their data is unchanged, which
    /// `status` can tell without reading it.
    pub inputs: String,
}

impl InjectorConfig {
    /// `sha256:` of everything injection is made from: equal fingerprints,
    /// equal sidecars.
    pub fn fingerprint(&self) -> String {
        let mut digest = Sha256::new();
        for part in [&self.template, &self.values, &self.mesh] {
            digest.update((part.len() as u64).to_be_bytes());
            digest.update(part.as_bytes());
        }
        let hex: String = digest
            .finalize()
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect();
        format!("sha256:{hex}")
    }
}

/// The istioctl to run: `--istioctl`, else the first on PATH.
pub fn locate(explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(path) = explicit {
        if path.is_file() {
            return Ok(path.to_owned());
        }
        return Err(Error::ToolMissing {
            tool: "istioctl",
            detail: format!("{} does not exist", path.display()),
        });
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("istioctl"))
        .find(|candidate| candidate.is_file())
        .ok_or(Error::ToolMissing {
            tool: "istioctl",
            detail: "it is not on PATH".into(),
        })
}

/// A directory only the current user can read, removed when dropped.
struct PrivateDir(PathBuf);

impl PrivateDir {
    fn create() -> Result<PrivateDir> {
        let path = std::env::temp_dir().join(format!(
            "kubectl-kms-sts-{}-{}",
            std::process::id(),
            jiff::Timestamp::now().as_nanosecond()
        ));
        private_files::create_dir(&path)?;
        Ok(PrivateDir(path))
    }

    fn write(&self, name: &str, content: &str) -> Result<PathBuf> {
        let path = self.0.join(name);
        private_files::write(&path, content.as_bytes(), Existing::Refuse)?;
        Ok(path)
    }
}

impl Drop for PrivateDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// How long kube-inject may run. It works on local files only and takes well
/// under a second; the limit is there so that no istioctl version can hang
/// the plugin.
const KUBE_INJECT_TIME_LIMIT: Duration = Duration::from_secs(60);

/// Runs `istioctl kube-inject` on `deployment` and returns the injected one.
/// istioctl is pointed at the same kubeconfig and context as the plugin, and
/// is given the revision, so it never looks the default revision up in the
/// cluster (without the right to list webhook configurations, istioctl would
/// wait for that answer forever).
pub async fn kube_inject(
    istioctl: &Path,
    target: &Target,
    deployment: &Deployment,
    config: &InjectorConfig,
) -> Result<Deployment> {
    let dir = PrivateDir::create()?;
    let manifest = serde_json::to_string(deployment).expect("a Deployment serialises");
    let input = dir.write("deployment.json", &manifest)?;
    let template = dir.write("inject-config.yaml", &config.template)?;
    let values = dir.write("values.json", &config.values)?;
    let mesh = dir.write("mesh.yaml", &config.mesh)?;

    let mut command = Command::new(istioctl);
    command
        .arg("kube-inject")
        .arg("-f")
        .arg(&input)
        .arg("--injectConfigFile")
        .arg(&template)
        .arg("--valuesFile")
        .arg(&values)
        .arg("--meshConfigFile")
        .arg(&mesh)
        .arg("--istioNamespace")
        .arg(&target.istio_namespace)
        .arg("--revision")
        .arg(&config.revision);
    if let Some(path) = &target.kubeconfig {
        command.arg("--kubeconfig").arg(path);
    }
    if let Some(context) = &target.context {
        command.arg("--context").arg(context);
    }
    let running = command.stdin(Stdio::null()).kill_on_drop(true).output();
    let output = tokio::time::timeout(KUBE_INJECT_TIME_LIMIT, running)
        .await
        .map_err(|_| Error::ToolFailed {
            tool: "istioctl",
            detail: format!(
                "kube-inject did not finish within {}s and was stopped",
                KUBE_INJECT_TIME_LIMIT.as_secs()
            ),
        })?
        .map_err(|source| Error::ToolFailed {
            tool: "istioctl",
            detail: source.to_string(),
        })?;
    if !output.status.success() {
        return Err(Error::ToolFailed {
            tool: "istioctl",
            detail: format!(
                "kube-inject exited with {}: {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ),
        });
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let not_a_deployment = |detail: String| Error::ToolFailed {
        tool: "istioctl",
        detail: format!("kube-inject printed something that is not one Deployment: {detail}"),
    };
    // kube-inject ends its output with a document separator: one document
    // and an empty one.
    let mut documents: Vec<Deployment> =
        serde_saphyr::from_multiple(&text).map_err(|err| not_a_deployment(err.to_string()))?;
    match documents.len() {
        1 => Ok(documents.remove(0)),
        n => Err(not_a_deployment(format!("{n} documents"))),
    }
}
