//! Istio proxy images and the versions their tags name: the image an
//! injector's `values` (or an Istio 1.0 template) would inject, and whether
//! a proxy is within Istio's supported skew of its control plane (the
//! control plane at most one minor version ahead of its proxies, never
//! behind). Pure functions.

use std::fmt;

use serde_json::Value;

/// The proxy image the injector whose `values` (the JSON of the
/// `istio-sidecar-injector` ConfigMap's `values` key) injects, as Istio's
/// template spells it: `global.proxy.image` when it is a whole image
/// reference, else `{hub}/{image}:{tag}`, with `-{variant}` when a variant
/// such as `distroless` is set. `None` when the values do not say.
pub fn injected_image(values: &str) -> Option<String> {
    let values: Value = serde_json::from_str(values).ok()?;
    let global = values.get("global")?;
    let image = global.pointer("/proxy/image")?.as_str()?;
    if image.contains('/') {
        return Some(image.to_owned());
    }
    let hub = global.get("hub")?.as_str()?;
    let tag = match global.get("tag")? {
        Value::String(tag) => tag.clone(),
        Value::Number(tag) => tag.to_string(),
        _ => return None,
    };
    let variant = global
        .get("variant")
        .and_then(Value::as_str)
        .filter(|variant| !variant.is_empty());
    Some(match variant {
        Some(variant) => format!("{hub}/{image}:{tag}-{variant}"),
        None => format!("{hub}/{image}:{tag}"),
    })
}

/// The proxy image an Istio 1.0 injector template injects: the chart wrote
/// it into the `istio-proxy` container's `image`, either as is or as the
/// default of its `sidecar.istio.io/proxyImage` annotation expression.
pub fn istio_1_0_image(template: &str) -> Option<String> {
    let mut lines = template.lines().map(str::trim);
    lines.find(|line| line.trim_start_matches("- ") == "name: istio-proxy")?;
    let image = lines
        .take_while(|line| !line.starts_with("- name:"))
        .find_map(|line| line.strip_prefix("image:"))?
        .trim();
    // Quoted, or the quoted default at the end of an annotation expression.
    let image = image.rsplit('"').nth(1).unwrap_or(image);
    (!image.is_empty() && !image.contains(['[', ' '])).then(|| image.to_owned())
}

/// An Istio release, as an image tag names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version {
    pub major: u64,
    pub minor: u64,
    pub patch: u64,
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// The version an image's tag names: `1.31.2`, `1.31.2-distroless`,
/// `1.31`; `None` for a digest, `latest` or any other tag.
pub fn version_of(image: &str) -> Option<Version> {
    let name = image.rsplit('/').next()?;
    if name.contains('@') {
        return None;
    }
    let (_, tag) = name.split_once(':')?;
    let release = tag.split('-').next()?;
    let mut parts = release.split('.').map(|part| part.parse::<u64>().ok());
    let major = parts.next()??;
    let minor = parts.next()??;
    let patch = parts.next().unwrap_or(Some(0))?;
    if parts.next().is_some() {
        return None;
    }
    Some(Version {
        major,
        minor,
        patch,
    })
}

/// How a proxy's version stands to its control plane's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skew {
    /// The same minor version, or the proxy one minor version behind.
    Supported,
    /// The proxy is newer than the control plane.
    ProxyNewer { proxy: Version, control: Version },
    /// The proxy is more than one minor version behind.
    TooFarBehind { proxy: Version, control: Version },
    /// One of the tags names no version (a digest, `latest`).
    Unknown,
}

/// The skew between the proxy image `proxy` and the image `control` the
/// control plane injects now.
pub fn skew(proxy: &str, control: &str) -> Skew {
    let (Some(proxy), Some(control)) = (version_of(proxy), version_of(control)) else {
        return Skew::Unknown;
    };
    let minors = |v: Version| (v.major, v.minor);
    if minors(proxy) > minors(control) {
        Skew::ProxyNewer { proxy, control }
    } else if proxy.major != control.major || control.minor > proxy.minor + 1 {
        Skew::TooFarBehind { proxy, control }
    } else {
        Skew::Supported
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_istio_1_0_template_names_its_proxy_image_in_the_proxy_container() {
        let template = |image: &str| {
            format!(
                "initContainers:\n- name: istio-init\n  image: \"docker.io/istio/proxy_init:1.0.2\"\n\
                 containers:\n- name: istio-proxy\n  ports: []\n  image: {image}\n"
            )
        };
        let annotated = "[[ annotation .ObjectMeta `sidecar.istio.io/proxyImage` \
                         \"docker.io/istio/proxyv2:1.0.2\" ]]";
        assert_eq!(
            istio_1_0_image(&template(annotated)).as_deref(),
            Some("docker.io/istio/proxyv2:1.0.2")
        );
        assert_eq!(
            istio_1_0_image(&template("\"docker.io/istio/proxyv2:1.0.0\"")).as_deref(),
            Some("docker.io/istio/proxyv2:1.0.0")
        );
        assert_eq!(
            istio_1_0_image(&template("docker.io/istio/proxyv2:1.0.1")).as_deref(),
            Some("docker.io/istio/proxyv2:1.0.1")
        );
        assert_eq!(istio_1_0_image(&template("[[ .ProxyImage ]]")), None);
        assert_eq!(
            istio_1_0_image("containers:\n- name: other\n  image: x\n"),
            None
        );
    }

    #[test]
    fn the_injected_image_is_built_from_hub_image_tag_and_variant() {
        let values = |global: Value| json!({ "global": global }).to_string();
        assert_eq!(
            injected_image(&values(json!({
                "hub": "docker.io/istio", "tag": "1.31.2", "proxy": {"image": "proxyv2"}
            }))),
            Some("docker.io/istio/proxyv2:1.31.2".into())
        );
        assert_eq!(
            injected_image(&values(json!({
                "hub": "docker.io/istio", "tag": "1.31.2", "variant": "distroless",
                "proxy": {"image": "proxyv2"}
            }))),
            Some("docker.io/istio/proxyv2:1.31.2-distroless".into())
        );
        assert_eq!(
            injected_image(&values(json!({
                "hub": "docker.io/istio", "tag": "1.31.2",
                "proxy": {"image": "mirror.example/istio/proxyv2:1.30.1"}
            }))),
            Some("mirror.example/istio/proxyv2:1.30.1".into())
        );
        assert_eq!(injected_image(&values(json!({"hub": "h"}))), None);
        assert_eq!(injected_image("not json"), None);
    }

    #[test]
    fn versions_come_from_tags_that_name_one() {
        let v = |major, minor, patch| Version {
            major,
            minor,
            patch,
        };
        assert_eq!(
            version_of("docker.io/istio/proxyv2:1.31.2"),
            Some(v(1, 31, 2))
        );
        assert_eq!(
            version_of("localhost:5000/istio/proxyv2:1.30.4-distroless"),
            Some(v(1, 30, 4))
        );
        assert_eq!(version_of("proxyv2:1.29"), Some(v(1, 29, 0)));
        assert_eq!(version_of("registry.istio.io/testing/proxyv2:latest"), None);
        assert_eq!(version_of("docker.io/istio/proxyv2@sha256:abcd"), None);
        assert_eq!(version_of("localhost:5000/proxyv2"), None);
    }

    #[test]
    fn the_proxy_may_be_one_minor_version_behind_and_never_ahead() {
        let hub = "docker.io/istio/proxyv2:";
        let skew_of = |proxy: &str, control: &str| {
            skew(&(hub.to_owned() + proxy), &(hub.to_owned() + control))
        };
        assert_eq!(skew_of("1.31.2", "1.31.0"), Skew::Supported);
        assert_eq!(skew_of("1.30.4", "1.31.2"), Skew::Supported);
        assert!(matches!(
            skew_of("1.29.0", "1.31.2"),
            Skew::TooFarBehind { .. }
        ));
        assert!(matches!(
            skew_of("1.32.0", "1.31.2"),
            Skew::ProxyNewer { .. }
        ));
        assert_eq!(skew_of("latest", "1.31.2"), Skew::Unknown);
    }
}
