//! What a `status` snapshot keeps of the objects it reads. A snapshot may be
//! saved and sent to someone without access to the cluster, so it never
//! holds secret material: the API key only as its fingerprint (see
//! `KeySecret`), TLS secrets only as their certificates, no environment
//! (and no volume but secrets) of a pod spec, and no
//! `last-applied-configuration` (which repeats an object's whole content, a
//! Secret's data included).
//! Applied when the snapshot is taken, so a live report and a report from the
//! saved file are decided on the same data.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::Resource;

use crate::objects::place::without_managed_fields;
use crate::objects::{injection_record, mounts};

/// The data keys of a TLS secret the checks read (the `kubernetes.io/tls`
/// keys and Istio's generic-secret keys), all of them certificates.
const CERTIFICATE_KEYS: [&str; 4] = ["tls.crt", "ca.crt", "cert", "cacert"];

const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// A secret with only its certificates: the data under `CERTIFICATE_KEYS`
/// that holds no private key; every other key (`tls.key` first) is dropped.
pub fn certificates_only(mut secret: Secret) -> Secret {
    if let Some(data) = secret.data.as_mut() {
        data.retain(|key, value| {
            CERTIFICATE_KEYS.contains(&key.as_str()) && !holds_private_key(&value.0)
        });
    }
    secret.string_data = None;
    without_bookkeeping(secret)
}

fn holds_private_key(pem: &[u8]) -> bool {
    String::from_utf8_lossy(pem).contains("PRIVATE KEY-----")
}

/// A pod without its environment or any volume but secrets
/// (`mounts::without_unread_parts`).
pub fn pod(mut pod: Pod) -> Pod {
    if let Some(spec) = pod.spec.as_mut() {
        mounts::without_unread_parts(spec);
    }
    without_bookkeeping(pod)
}

/// A Deployment whose pod template has no environment and no volume but
/// secrets (`mounts::without_unread_parts`), and without the never-injected
/// template `inject` recorded on it (which holds the literal values the pod
/// template had).
pub fn deployment(mut deployment: Deployment) -> Deployment {
    if let Some(annotations) = deployment.metadata.annotations.as_mut() {
        annotations.remove(injection_record::ORIGINAL_TEMPLATE);
    }
    if let Some(spec) = deployment
        .spec
        .as_mut()
        .and_then(|spec| spec.template.spec.as_mut())
    {
        mounts::without_unread_parts(spec);
    }
    without_bookkeeping(deployment)
}

/// An object without the metadata the checks never read and that may
/// repeat its content: managed fields and the last applied configuration.
pub fn without_bookkeeping<K: Resource>(object: K) -> K {
    let mut object = without_managed_fields(object);
    let meta = object.meta_mut();
    if let Some(annotations) = meta.annotations.as_mut() {
        annotations.remove(LAST_APPLIED);
    }
    object
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_tls_secret_keeps_its_certificates_only() {
        use crate::values::certificate::fixtures::{CA, LEAF, secret};
        let key = "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n";
        let bundle = format!("{LEAF}{key}");
        let mut full = secret(&[
            ("tls.crt", LEAF),
            ("tls.key", key),
            ("ca.crt", CA),
            ("cert", &bundle),
            ("password", "hunter2"),
        ]);
        full.metadata.annotations =
            Some([(LAST_APPLIED.to_owned(), "{\"data\":{}}".to_owned())].into());
        let kept = certificates_only(full);
        let data = kept.data.unwrap();
        assert_eq!(
            data.keys().map(String::as_str).collect::<Vec<_>>(),
            ["ca.crt", "tls.crt"]
        );
        assert_eq!(data["tls.crt"].0, LEAF.as_bytes());
        assert!(kept.metadata.annotations.unwrap().is_empty());
    }

    #[test]
    fn pod_specs_lose_their_environment_and_every_volume_but_secrets() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p", "managedFields": [{"manager": "m"}]},
            "spec": {
                "containers": [{"name": "c", "env": [
                    {"name": "TOKEN", "value": "s3cret"},
                    {"name": "KEY", "valueFrom": {"secretKeyRef": {"name": "k", "key": "v"}}}],
                    "volumeMounts": [{"name": "tls", "mountPath": "/etc/tls"}]}],
                "initContainers": [{"name": "i", "env": [{"name": "PASSWORD", "value": "p4ss"}]}],
                "ephemeralContainers": [{"name": "e", "env": [{"name": "X", "value": "d3bug"}]}],
                "volumes": [{"name": "tls", "secret": {"secretName": "kms-tls"}},
                            {"name": "scratch", "emptyDir": {}}]
            }
        }))
        .unwrap();
        let text = serde_json::to_string(&super::pod(pod)).unwrap();
        for gone in [
            "s3cret",
            "p4ss",
            "d3bug",
            "TOKEN",
            "managedFields",
            "scratch",
        ] {
            assert!(!text.contains(gone), "{gone} in {text}");
        }
        for kept in ["kms-tls", "/etc/tls"] {
            assert!(text.contains(kept), "{kept} not in {text}");
        }
    }
}
