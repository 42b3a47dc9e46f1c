//! The gateway proxies' own account: what istiod sent each ready gateway pod
//! and what its proxy took (read from Envoy's admin interface, as
//! `istioctl proxy-config` reads it), compared with what the objects say.
//! The other data path checks judge the objects (for the Gateway API, with
//! istiod's conditions); this one catches what only the running gateway
//! knows: KMS's server dropped in a merge, another application's filter
//! chain answering KMS's name first, a route or cluster the proxy rejected
//! or was never sent, a renewed certificate the gateway does not serve yet,
//! an upstream with no endpoints.

use crate::checks::evaluate::exposure::routed_host;
use crate::checks::proxy_reading::{GatewayProxies, ProxyReading, kms_cluster_suffix};
use crate::checks::snapshot::{Names, Snapshot, certificate_hosts, expose_command};
use crate::checks::{Check, CheckId};
use crate::manifests::exposure::{KMS_SERVICE, served_hosts};
use crate::objects::mounts::secret_data;
use crate::terminal::wording::count;
use crate::values::certificate;

pub fn check(s: &Snapshot, names: &Names) -> Check {
    let readings = match &s.gateway_proxies {
        GatewayProxies::Read(readings) => readings,
        GatewayProxies::Skipped { reason, hint } => {
            return Check::lasting_warn(CheckId::GatewayConfig, format!("skipped: {reason}"), hint);
        }
    };
    if readings.is_empty() {
        return Check::fail(
            CheckId::GatewayConfig,
            "no ready gateway pod to ask what it holds",
            format!("run {}", expose_command(s, names)),
        );
    }
    let expected = Expected::of(s, names);
    let mut problems = Vec::new();
    let mut unreadable: Vec<(&str, &str)> = Vec::new();
    for reading in readings {
        match &reading.unreadable {
            Some(error) => unreadable.push((&reading.pod, error)),
            None => problems.extend(
                expected
                    .differences(reading)
                    .into_iter()
                    .map(|problem| format!("{}: {problem}", reading.pod)),
            ),
        }
    }
    if !problems.is_empty() {
        return Check::fail(
            CheckId::GatewayConfig,
            problems.join("; "),
            format!(
                "run {}; if the difference stays, istiod's log and `istioctl proxy-status` \
                 say why the proxy has not taken the objects",
                expose_command(s, names)
            ),
        );
    }
    if let Some((pod, _)) = unreadable.first() {
        let said: Vec<String> = unreadable
            .iter()
            .map(|(pod, error)| format!("{pod}: {error}"))
            .collect();
        return Check::lasting_warn(
            CheckId::GatewayConfig,
            format!(
                "could not read what a gateway proxy holds: {}",
                said.join("; ")
            ),
            format!(
                "`kubectl port-forward -n {} pod/{pod} 15000{}` and `curl \
                 localhost:15000/config_dump` show it by hand",
                names.istio_namespace, names.kubectl_flags
            ),
        );
    }
    Check::pass(
        CheckId::GatewayConfig,
        format!(
            "{} {}: {}",
            count(
                readings.len() as i64,
                "gateway proxy serves",
                "gateway proxies serve"
            ),
            expected.hosts.join(", "),
            expected.describe()
        ),
    )
}

/// What every ready gateway proxy should hold, from the objects.
struct Expected {
    /// The names KMS's filter chains answer (`*`: every name).
    hosts: Vec<String>,
    /// The serial of the certificate in the Certificate's secret.
    serial: Option<String>,
    prefix: Option<String>,
    rewrite: Option<String>,
    cluster: Option<String>,
    sni: Option<String>,
    /// The objects the route and the upstream TLS come from, for messages.
    route_source: &'static str,
    tls_source: &'static str,
}

impl Expected {
    fn of(s: &Snapshot, names: &Names) -> Expected {
        let serial = s
            .certificate_secret
            .as_ref()
            .and_then(|secret| secret_data(secret, "tls.crt"))
            .and_then(|pem| certificate::parse(pem).ok())
            .map(|cert| cert.serial);
        let kms_cluster = |host: Option<&str>, port: Option<u32>| match (host, port) {
            (Some(KMS_SERVICE), Some(port)) => Some(format!(
                "outbound|{port}{}",
                kms_cluster_suffix(&names.kms_namespace)
            )),
            _ => None,
        };
        let hosts = served_hosts(&certificate_hosts(s));
        if s.through_gateway_api() {
            let route = s.gateway_api.route.as_ref().map(|route| &route.spec);
            let backend = route.and_then(|spec| spec.first_backend());
            return Expected {
                hosts,
                serial,
                // Istio matches a PathPrefix as whole segments, without a
                // trailing `/`.
                prefix: route
                    .and_then(|spec| spec.first_prefix())
                    .map(|prefix| prefix.trim_end_matches('/').to_owned()),
                rewrite: route
                    .and_then(|spec| spec.first_prefix_rewrite())
                    .map(str::to_owned),
                cluster: kms_cluster(
                    backend.map(|(service, _)| service),
                    backend.and_then(|(_, port)| u32::try_from(port).ok()),
                ),
                sni: s
                    .gateway_api
                    .policy
                    .as_ref()
                    .map(|policy| policy.spec.validation.hostname.clone()),
                route_source: "the HTTPRoute",
                tls_source: "the BackendTLSPolicy",
            };
        }
        let route = s.virtual_service.as_ref().map(|vs| &vs.spec);
        let port = route
            .and_then(|spec| spec.first_destination())
            .and_then(|destination| destination.port_number());
        Expected {
            hosts,
            serial,
            prefix: route
                .and_then(|spec| spec.first_prefix())
                .map(str::to_owned),
            rewrite: route.and_then(|spec| spec.http.first()?.rewrite.as_ref()?.uri.clone()),
            cluster: kms_cluster(routed_host(s), port),
            sni: s
                .destination_rule
                .as_ref()
                .and_then(|rule| rule.spec.tls()?.sni.clone()),
            route_source: "the VirtualService",
            tls_source: "the DestinationRule",
        }
    }

    fn describe(&self) -> String {
        format!(
            "certificate serial {}, route {} -> {} rewritten to {}, TLS to {}",
            self.serial.as_deref().unwrap_or("unknown"),
            self.prefix.as_deref().unwrap_or("unset"),
            self.cluster.as_deref().unwrap_or("unset"),
            self.rewrite.as_deref().unwrap_or("unset"),
            self.sni.as_deref().unwrap_or("unset"),
        )
    }

    /// How `reading` differs from what is expected, in words.
    fn differences(&self, reading: &ProxyReading) -> Vec<String> {
        let mut found = reading
            .rejected
            .iter()
            .map(|rejected| format!("rejected {rejected}"))
            .collect::<Vec<_>>();
        for taken in &reading.taken {
            found.push(format!(
                "another application's filter chain ({}) answers {} on listener {} before KMS's: \
                 its requests go there",
                taken.by, taken.host, taken.listener
            ));
        }
        if reading.chains.is_empty() {
            found.push(
                "holds no filter chain for KMS's Gateway server (istiod dropped it, or has not \
                 sent it)"
                    .into(),
            );
        }
        for host in &self.hosts {
            let answers = |names: &Vec<String>| {
                if host == "*" {
                    names.is_empty()
                } else {
                    names.contains(host)
                }
            };
            if !reading.chains.is_empty()
                && !reading.chains.iter().any(|c| answers(&c.server_names))
            {
                found.push(format!("no filter chain of KMS's answers {host}"));
            }
        }
        for chain in &reading.chains {
            match (&chain.certificate_serial, &self.serial) {
                (None, _) => found.push(format!(
                    "has not loaded the certificate ({})",
                    chain.certificate_source
                )),
                (Some(served), Some(wanted)) if served != wanted => found.push(format!(
                    "serves certificate serial {served}, the secret holds {wanted}: the \
                     renewal has not reached the gateway"
                )),
                _ => {}
            }
        }
        if self.cluster.is_none() {
            // No route to kms-api: its own check says so.
            return found;
        }
        if !reading.route_config {
            found.push("holds no route configuration for KMS's server".into());
        } else if !reading.routes.iter().any(|route| {
            route.prefix == self.prefix
                && route.rewrite == self.rewrite
                && route.cluster == self.cluster
        }) {
            let held: Vec<String> = reading
                .routes
                .iter()
                .map(|route| {
                    format!(
                        "{} -> {} rewritten to {}",
                        route.prefix.as_deref().unwrap_or("(no prefix)"),
                        route.cluster.as_deref().unwrap_or("(no cluster)"),
                        route.rewrite.as_deref().unwrap_or("(none)")
                    )
                })
                .collect();
            found.push(format!(
                "routes {} where {} says {} -> {} rewritten to {}",
                if held.is_empty() {
                    "nothing".to_owned()
                } else {
                    held.join(", ")
                },
                self.route_source,
                self.prefix.as_deref().unwrap_or("unset"),
                self.cluster.as_deref().unwrap_or("unset"),
                self.rewrite.as_deref().unwrap_or("unset"),
            ));
        }
        match reading
            .clusters
            .iter()
            .find(|cluster| Some(&cluster.name) == self.cluster.as_ref())
        {
            None => found.push(format!(
                "holds no cluster {}",
                self.cluster.as_deref().unwrap_or("for kms-api")
            )),
            Some(cluster) => {
                if cluster.sni != self.sni {
                    found.push(format!(
                        "speaks TLS to kms-api as {} where {} says {}",
                        cluster.sni.as_deref().unwrap_or("(no TLS of its own)"),
                        self.tls_source,
                        self.sni.as_deref().unwrap_or("unset")
                    ));
                }
                if cluster.healthy_endpoints == 0 {
                    found.push(format!(
                        "has no healthy endpoint for {} ({} known)",
                        cluster.name, cluster.endpoints
                    ));
                }
            }
        }
        found
    }
}
