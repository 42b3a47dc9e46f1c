//! The runbook's steps 5-12: the Certificate for the ingress gateway's TLS
//! secret, the Gateway, the VirtualService routing `/kms/api` to the KMS
//! Service, and the DestinationRule for TLS to it; plus the Secret that hands
//! the gateway the CA of kms-api's certificate. Fixed from the runbook: IP
//! addresses go to `ipAddresses` (not `dnsNames`), the common name has no
//! typographic quotes, the route's port is the Service's real port, the
//! gateway's certificate is delivered the way the selected gateway pods can
//! load it, and the gateway verifies kms-api's certificate against the CA
//! that signed it (a bare `mode: SIMPLE` makes current Istio verify against
//! the system's public roots, which fails every request).

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Pod, Secret, Service};

use crate::objects::apis::ServedApis;
use crate::objects::mounts::{pods_mount, secret_data};
use crate::objects::owned::{self, CA_SECRET, CERTIFICATE, GATEWAY, Owned, Where};
use crate::objects::place::{Desired, ObjectRef};
use crate::objects::schemas::{
    CertificateSpec, ClientTls, Destination, DestinationRuleSpec, GatewaySpec, HttpMatch,
    HttpRoute, IssuerRef, PortSelector, Rewrite, RouteDestination, Server, ServerPort, ServerTls,
    TrafficPolicy, UriMatch, VirtualServiceSpec,
};
use crate::values::certificate;
use crate::values::host::Host;

pub const KMS_SERVICE: &str = "kms-api";
/// Where Istio's file-based gateways (the Istio 1.0 chart, `istioctl
/// install`) mount `istio-ingressgateway-certs` and `istio-ingressgateway-ca-certs`.
pub const CERTS_DIR: &str = "/etc/istio/ingressgateway-certs";
pub const CA_CERTS_DIR: &str = "/etc/istio/ingressgateway-ca-certs";

/// The KMS Service's port the route must use: `explicit` when given (and
/// served by the Service), else the Service's only port.
pub fn service_port(service: &Service, explicit: Option<i32>) -> Result<i32, String> {
    let ports: Vec<i32> = service
        .spec
        .iter()
        .flat_map(|spec| spec.ports.iter().flatten())
        .map(|port| port.port)
        .collect();
    match (explicit, ports.as_slice()) {
        (Some(port), _) if ports.contains(&port) => Ok(port),
        (Some(port), _) => Err(format!(
            "the Service has no port {port} (its ports: {})",
            list(&ports)
        )),
        (None, [only]) => Ok(*only),
        (None, []) => Err("the Service has no ports".into()),
        (None, _) => Err(format!(
            "the Service has several ports ({}); choose one with --port",
            list(&ports)
        )),
    }
}

fn list(ports: &[i32]) -> String {
    ports
        .iter()
        .map(i32::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// How a gateway pod loads a certificate or a CA: from a file of a secret
/// it mounts, or by name from Istio's secret discovery (`credentialName`,
/// a secret in the gateway's namespace).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    Files,
    Credential(String),
}

/// The gateway's certificate delivery: the named credential when one is
/// forced, files where the gateway pods mount the runbook's secret, else
/// the Certificate's secret by name.
pub fn server_delivery(forced: Option<&str>, gateway_pods: &[Pod]) -> Delivery {
    match forced {
        Some(name) => Delivery::Credential(name.to_owned()),
        None if pods_mount(gateway_pods, CERTIFICATE, CERTS_DIR) => Delivery::Files,
        None => Delivery::Credential(CERTIFICATE.to_owned()),
    }
}

/// Where the gateway reads the CA for kms-api from: the mounted CA secret's
/// file where the gateway pods mount it, else the same secret by name.
pub fn ca_delivery(gateway_pods: &[Pod]) -> Delivery {
    if pods_mount(gateway_pods, CA_SECRET, CA_CERTS_DIR) {
        Delivery::Files
    } else {
        Delivery::Credential(CA_SECRET.to_owned())
    }
}

/// The name the gateway sends as SNI and expects in kms-api's certificate:
/// the most specific of the Service's DNS names that `covers` accepts.
pub fn upstream_name(kms_namespace: &str, covers: impl Fn(&str) -> bool) -> Option<String> {
    let fqdn = format!("{KMS_SERVICE}.{kms_namespace}.svc.cluster.local");
    [
        fqdn.clone(),
        format!("{KMS_SERVICE}.{kms_namespace}.svc"),
        format!("{KMS_SERVICE}.{kms_namespace}"),
        KMS_SERVICE.to_owned(),
    ]
    .into_iter()
    .find(|name| covers(name))
}

/// The hosts KMS's gateway server and route claim. A gateway tells
/// HTTPS servers apart by the name the client sends (SNI), so KMS claims
/// its DNS names and lives beside other applications on the same
/// gateway. A client that connects to an IP address sends no name and
/// lands on the server that claims `*`, so an IP address among the
/// hosts makes KMS claim `*`: the gateway's default, which `expose`
/// takes only when no other Gateway on the same pods and port has it.
pub fn served_hosts(hosts: &[Host]) -> Vec<String> {
    if hosts.iter().any(Host::is_ip) {
        return vec!["*".into()];
    }
    let mut names: Vec<String> = Vec::new();
    for host in hosts {
        if let Host::Dns(name) = host
            && !names.contains(name)
        {
            names.push(name.clone());
        }
    }
    names
}

/// Why the gateway could not be told how to trust kms-api, and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unverifiable {
    pub problem: String,
    pub hint: String,
}

/// How the gateway must verify kms-api: the CA from `ca_secret` (the
/// operator's `--upstream-ca-secret`, holding `ca.crt`) or else from the TLS
/// secret kms-api's pods mount (`served`, as cert-manager writes it: `tls.crt`
/// and `ca.crt`); the name from the certificate kms-api serves. Refuses a CA
/// that did not sign that certificate, and a certificate that names none of
/// the Service's DNS names: either would fail every handshake.
pub fn upstream_trust(
    kms_namespace: &str,
    served: Option<(&str, &Secret)>,
    ca_secret: Option<(&str, &Secret)>,
) -> Result<UpstreamTrust, Unverifiable> {
    let hint = format!(
        "pass --upstream-ca-secret NAME: a Secret in {kms_namespace} whose ca.crt is the CA \
         that signed the certificate kms-api serves"
    );
    let unverifiable = |problem: String| Unverifiable {
        problem,
        hint: hint.clone(),
    };
    let data = |secret: &Secret, key: &str| secret_data(secret, key).map(<[u8]>::to_vec);
    let ca_pem = match (ca_secret, served) {
        (Some((name, secret)), _) => data(secret, "ca.crt").ok_or_else(|| {
            unverifiable(format!("secret {kms_namespace}/{name} holds no ca.crt"))
        })?,
        (None, Some((name, secret))) => data(secret, "ca.crt").ok_or_else(|| {
            unverifiable(format!(
                "the TLS secret {kms_namespace}/{name} that kms-api's pods mount holds no ca.crt"
            ))
        })?,
        (None, None) => {
            return Err(unverifiable(format!(
                "the pods behind {kms_namespace}/{KMS_SERVICE} mount no TLS secret, so the CA \
                 that signed KMS's certificate cannot be read from the cluster"
            )));
        }
    };
    let cas = certificate::parse_all(&ca_pem)
        .map_err(|problem| unverifiable(format!("the CA {problem}")))?;
    let fqdn = format!("{KMS_SERVICE}.{kms_namespace}.svc.cluster.local");
    let name = match served.and_then(|(name, secret)| Some((name, data(secret, "tls.crt")?))) {
        None => fqdn,
        Some((secret, pem)) => {
            let cert = certificate::parse(&pem).map_err(|problem| {
                unverifiable(format!("tls.crt of {kms_namespace}/{secret} {problem}"))
            })?;
            if !cert.signed_by_any(&cas) {
                return Err(unverifiable(format!(
                    "the CA given did not sign kms-api's certificate (issued by {})",
                    cert.issuer
                )));
            }
            upstream_name(kms_namespace, |n| cert.covers_name(n)).ok_or_else(|| Unverifiable {
                problem: format!(
                    "kms-api's certificate names none of the Service's DNS names (it names {})",
                    cert.dns_names.join(", ")
                ),
                hint: format!(
                    "reissue the certificate in {kms_namespace}/{secret} with the name {fqdn}"
                ),
            })?
        }
    };
    Ok(UpstreamTrust {
        ca_pem: String::from_utf8_lossy(&ca_pem).into_owned(),
        name,
    })
}

/// How the gateway trusts kms-api: the CA (PEM) it verifies against and the
/// name it sends and checks.
#[derive(Debug, Clone)]
pub struct UpstreamTrust {
    pub ca_pem: String,
    pub name: String,
}

/// Where the objects `expose` writes live: known from the namespaces and the
/// served API versions alone, so they are read before their contents are
/// decided.
#[derive(Debug, Clone)]
pub struct Places {
    pub certificate: ObjectRef,
    pub ca_secret: ObjectRef,
    pub gateway: ObjectRef,
    pub virtual_service: ObjectRef,
    pub destination_rule: ObjectRef,
}

impl Places {
    /// Where they are in this run; `None` when the cluster serves no
    /// cert-manager or no Istio networking API.
    pub fn new(served: &ServedApis, at: &Where) -> Option<Places> {
        let place = |owned: &Owned| owned.place(served, at);
        Some(Places {
            certificate: place(&owned::CERTIFICATE_OBJECT)?,
            ca_secret: place(&owned::CA_SECRET_OBJECT)?,
            gateway: place(&owned::GATEWAY_OBJECT)?,
            virtual_service: place(&owned::VIRTUAL_SERVICE_OBJECT)?,
            destination_rule: place(&owned::DESTINATION_RULE_OBJECT)?,
        })
    }

    /// All of them, in the order they are applied.
    pub fn all(&self) -> Vec<ObjectRef> {
        vec![
            self.certificate.clone(),
            self.ca_secret.clone(),
            self.gateway.clone(),
            self.virtual_service.clone(),
            self.destination_rule.clone(),
        ]
    }
}

/// Everything the objects are made from.
#[derive(Debug, Clone)]
pub struct Exposure {
    pub places: Places,
    pub issuance: Issuance,
    pub gateway_selector: (String, String),
    pub server_delivery: Delivery,
    pub upstream: UpstreamTrust,
    /// How the CA of `upstream` reaches the gateway.
    pub ca_delivery: Delivery,
    pub path_prefix: String,
    pub rewrite: String,
    pub port: i32,
}

/// What the gateway's certificate is issued for, and by whom.
#[derive(Debug, Clone)]
pub struct Issuance {
    pub issuer: String,
    /// `ClusterIssuer` or `Issuer`.
    pub issuer_kind: String,
    pub common_name: String,
    pub hosts: Vec<Host>,
}

impl Issuance {
    /// The Certificate at `place` that fills the secret `secret_name`.
    pub fn certificate(&self, place: ObjectRef, secret_name: &str) -> Desired {
        let mut spec = CertificateSpec {
            secret_name: secret_name.to_owned(),
            common_name: Some(self.common_name.clone()),
            issuer_ref: IssuerRef {
                name: self.issuer.clone(),
                kind: Some(self.issuer_kind.clone()),
                ..IssuerRef::default()
            },
            ..CertificateSpec::default()
        };
        for host in &self.hosts {
            let (list, text) = match host {
                Host::Ip(ip) => (&mut spec.ip_addresses, ip.to_string()),
                Host::Dns(name) => (&mut spec.dns_names, name.clone()),
            };
            if !list.contains(&text) {
                list.push(text);
            }
        }
        Desired::with_spec(place, &spec)
    }
}

impl Exposure {
    pub fn certificate(&self) -> Desired {
        self.issuance
            .certificate(self.places.certificate.clone(), self.tls_secret_name())
    }

    /// The secret the Certificate fills and the gateway serves.
    pub fn tls_secret_name(&self) -> &str {
        match &self.server_delivery {
            Delivery::Credential(name) => name,
            Delivery::Files => CERTIFICATE,
        }
    }

    /// The CA of kms-api's certificate, in the gateway's namespace.
    pub fn ca_secret(&self) -> Desired {
        let secret = Secret {
            type_: Some("Opaque".into()),
            data: Some(BTreeMap::from([(
                "ca.crt".to_owned(),
                ByteString(self.upstream.ca_pem.clone().into_bytes()),
            )])),
            ..Secret::default()
        };
        Desired::with_fields(self.places.ca_secret.clone(), &secret)
    }

    pub fn gateway(&self) -> Desired {
        Desired::with_spec(self.places.gateway.clone(), &self.gateway_spec())
    }

    /// The Gateway's spec: what `gateway` writes, and what `expose` checks
    /// against the other Gateways on the same pods before it does.
    pub fn gateway_spec(&self) -> GatewaySpec {
        let tls = match &self.server_delivery {
            Delivery::Credential(name) => ServerTls {
                mode: Some("SIMPLE".into()),
                credential_name: Some(name.clone()),
                ..ServerTls::default()
            },
            Delivery::Files => ServerTls {
                mode: Some("SIMPLE".into()),
                server_certificate: Some(format!("{CERTS_DIR}/tls.crt")),
                private_key: Some(format!("{CERTS_DIR}/tls.key")),
                ..ServerTls::default()
            },
        };
        let (label, value) = &self.gateway_selector;
        GatewaySpec {
            selector: BTreeMap::from([(label.clone(), value.clone())]),
            servers: vec![Server {
                port: ServerPort {
                    number: Some(443),
                    name: Some("https".into()),
                    protocol: Some("HTTPS".into()),
                    ..ServerPort::default()
                },
                tls: Some(tls),
                hosts: served_hosts(&self.issuance.hosts),
                ..Server::default()
            }],
            ..GatewaySpec::default()
        }
    }

    pub fn virtual_service(&self) -> Desired {
        let spec = VirtualServiceSpec {
            hosts: served_hosts(&self.issuance.hosts),
            gateways: vec![GATEWAY.into()],
            http: vec![HttpRoute {
                matches: vec![HttpMatch {
                    uri: Some(UriMatch {
                        prefix: Some(self.path_prefix.clone()),
                        ..UriMatch::default()
                    }),
                    ..HttpMatch::default()
                }],
                rewrite: Some(Rewrite {
                    uri: Some(self.rewrite.clone()),
                    ..Rewrite::default()
                }),
                route: vec![RouteDestination {
                    destination: Destination {
                        host: Some(KMS_SERVICE.into()),
                        port: Some(PortSelector {
                            number: u32::try_from(self.port).ok(),
                            ..PortSelector::default()
                        }),
                        ..Destination::default()
                    },
                    ..RouteDestination::default()
                }],
                ..HttpRoute::default()
            }],
            ..VirtualServiceSpec::default()
        };
        Desired::with_spec(self.places.virtual_service.clone(), &spec)
    }

    pub fn destination_rule(&self) -> Desired {
        let trust = &self.upstream;
        let mut tls = ClientTls {
            mode: Some("SIMPLE".into()),
            sni: Some(trust.name.clone()),
            subject_alt_names: vec![trust.name.clone()],
            ..ClientTls::default()
        };
        match &self.ca_delivery {
            Delivery::Files => tls.ca_certificates = Some(format!("{CA_CERTS_DIR}/ca.crt")),
            Delivery::Credential(name) => tls.credential_name = Some(name.clone()),
        }
        let spec = DestinationRuleSpec {
            host: Some(KMS_SERVICE.into()),
            traffic_policy: Some(TrafficPolicy {
                tls: Some(tls),
                ..TrafficPolicy::default()
            }),
            ..DestinationRuleSpec::default()
        };
        Desired::with_spec(self.places.destination_rule.clone(), &spec)
    }

    /// All of them, in the order they are applied.
    pub fn objects(&self) -> Vec<Desired> {
        vec![
            self.certificate(),
            self.ca_secret(),
            self.gateway(),
            self.virtual_service(),
            self.destination_rule(),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::mounts::mounted_secrets;
    use crate::values::host::parse_host;
    use serde_json::{Value, json};

    const AT: Where = Where::namespaces("kube-system", "istio-system");

    fn exposure(hosts: &[&str]) -> Exposure {
        Exposure {
            places: Places::new(&ServedApis::preferred(), &AT).unwrap(),
            issuance: Issuance {
                issuer: "icp-ca-issuer".into(),
                issuer_kind: "ClusterIssuer".into(),
                common_name: "istio-service".into(),
                hosts: hosts.iter().map(|h| parse_host(h).unwrap()).collect(),
            },
            gateway_selector: ("istio".into(), "ingressgateway".into()),
            server_delivery: Delivery::Files,
            upstream: UpstreamTrust {
                ca_pem: "-----BEGIN CERTIFICATE-----\n".into(),
                name: "kms-api.kube-system.svc.cluster.local".into(),
            },
            ca_delivery: Delivery::Files,
            path_prefix: "/kms/api".into(),
            rewrite: "/api".into(),
            port: 28674,
        }
    }

    #[test]
    fn ips_and_names_go_to_their_own_fields() {
        let cert =
            exposure(&["9.42.136.50", "kms.example.com", "::1", "9.42.136.50"]).certificate();
        assert_eq!(cert.object["apiVersion"], "cert-manager.io/v1");
        assert_eq!(
            cert.object["spec"]["ipAddresses"],
            json!(["9.42.136.50", "::1"])
        );
        assert_eq!(cert.object["spec"]["dnsNames"], json!(["kms.example.com"]));
        assert_eq!(cert.object["spec"]["commonName"], "istio-service");
        assert_eq!(cert.object["metadata"]["namespace"], "istio-system");
    }

    #[test]
    fn legacy_cert_manager_uses_its_group() {
        let mut e = exposure(&["10.0.0.1"]);
        let legacy = ServedApis::from_triples([
            ("certmanager.k8s.io", "v1alpha1", "certificates"),
            ("networking.istio.io", "v1alpha3", "gateways"),
            ("networking.istio.io", "v1alpha3", "virtualservices"),
            ("networking.istio.io", "v1alpha3", "destinationrules"),
        ]);
        e.places = Places::new(&legacy, &AT).unwrap();
        assert_eq!(
            e.certificate().object["apiVersion"],
            "certmanager.k8s.io/v1alpha1"
        );
    }

    #[test]
    fn route_uses_the_given_port_and_version() {
        let mut e = exposure(&["10.0.0.1"]);
        let older_istio = ServedApis::from_triples([
            ("cert-manager.io", "v1", "certificates"),
            ("networking.istio.io", "v1alpha3", "gateways"),
            ("networking.istio.io", "v1alpha3", "virtualservices"),
            ("networking.istio.io", "v1alpha3", "destinationrules"),
        ]);
        e.places = Places::new(&older_istio, &AT).unwrap();
        let vs = e.virtual_service();
        assert_eq!(vs.object["apiVersion"], "networking.istio.io/v1alpha3");
        let route = &vs.object["spec"]["http"][0];
        assert_eq!(route["route"][0]["destination"]["port"]["number"], 28674);
        assert_eq!(route["match"][0]["uri"]["prefix"], "/kms/api");
        assert_eq!(route["rewrite"]["uri"], "/api");
        assert_eq!(vs.object["spec"]["gateways"], json!(["kmsgateway"]));
    }

    #[test]
    fn gateway_serves_mounted_files_or_a_credential() {
        let mut e = exposure(&["10.0.0.1"]);
        let tls = &e.gateway().object["spec"]["servers"][0]["tls"];
        assert_eq!(
            tls["serverCertificate"],
            "/etc/istio/ingressgateway-certs/tls.crt"
        );
        assert_eq!(tls["privateKey"], "/etc/istio/ingressgateway-certs/tls.key");
        e.server_delivery = Delivery::Credential("kms-gw-cert".into());
        let tls = e.gateway().object["spec"]["servers"][0]["tls"].clone();
        assert_eq!(
            tls,
            json!({"mode": "SIMPLE", "credentialName": "kms-gw-cert"})
        );
        assert_eq!(e.certificate().object["spec"]["secretName"], "kms-gw-cert");
    }

    fn pod(volumes: Value) -> Pod {
        serde_json::from_value(json!({"spec": {
            "containers": [{"name": "istio-proxy", "volumeMounts": [
                {"name": "certs", "mountPath": "/etc/istio/ingressgateway-certs"},
                {"name": "ca", "mountPath": "/etc/istio/ingressgateway-ca-certs/"}]}],
            "volumes": volumes,
        }}))
        .unwrap()
    }

    #[test]
    fn delivery_follows_what_the_gateway_pods_mount() {
        let mounting = pod(json!([
            {"name": "certs", "secret": {"secretName": "istio-ingressgateway-certs", "optional": true}},
            {"name": "ca", "secret": {"secretName": "istio-ingressgateway-ca-certs"}}]));
        let other_secret = pod(json!([
            {"name": "certs", "secret": {"secretName": "something-else"}}]));
        let bare = pod(json!([]));
        assert_eq!(
            server_delivery(None, std::slice::from_ref(&mounting)),
            Delivery::Files
        );
        assert_eq!(
            ca_delivery(std::slice::from_ref(&mounting)),
            Delivery::Files
        );
        for pods in [
            vec![],
            vec![bare.clone()],
            vec![other_secret],
            vec![mounting.clone(), bare],
        ] {
            assert_eq!(
                server_delivery(None, &pods),
                Delivery::Credential(CERTIFICATE.into())
            );
            assert_eq!(ca_delivery(&pods), Delivery::Credential(CA_SECRET.into()));
        }
        assert_eq!(
            server_delivery(Some("mine"), std::slice::from_ref(&mounting)),
            Delivery::Credential("mine".into())
        );
        assert_eq!(
            mounted_secrets(&mounting),
            vec![
                "istio-ingressgateway-certs",
                "istio-ingressgateway-ca-certs"
            ]
        );
    }

    #[test]
    fn upstream_trust_names_the_ca_and_a_name_of_the_certificate() {
        let mut e = exposure(&["10.0.0.1"]);
        let tls = &e.destination_rule().object["spec"]["trafficPolicy"]["tls"].clone();
        assert_eq!(
            tls,
            &json!({"mode": "SIMPLE", "sni": "kms-api.kube-system.svc.cluster.local",
                    "subjectAltNames": ["kms-api.kube-system.svc.cluster.local"],
                    "caCertificates": "/etc/istio/ingressgateway-ca-certs/ca.crt"})
        );
        e.ca_delivery = Delivery::Credential(CA_SECRET.into());
        let tls = &e.destination_rule().object["spec"]["trafficPolicy"]["tls"].clone();
        assert_eq!(tls["credentialName"], CA_SECRET);
        assert!(tls.get("caCertificates").is_none());
        let secret = e.ca_secret().object;
        assert_eq!(secret["apiVersion"], "v1");
        assert_eq!(secret["metadata"]["namespace"], "istio-system");
        assert_eq!(
            secret["data"]["ca.crt"],
            "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCg=="
        );
        assert_eq!(
            upstream_name("ns", |n| n == "kms-api.ns.svc" || n == "kms-api"),
            Some("kms-api.ns.svc".into())
        );
        assert_eq!(upstream_name("ns", |_| false), None);
    }

    #[test]
    fn upstream_trust_comes_from_the_served_secret_or_the_given_ca() {
        use crate::values::certificate::fixtures::{
            CA as ca, LEAF as leaf, OTHER_CA as other, secret,
        };
        let served = secret(&[("tls.crt", leaf), ("ca.crt", ca)]);
        let trust = upstream_trust("kube-system", Some(("kms-tls", &served)), None).unwrap();
        assert_eq!(trust.ca_pem, ca);
        assert_eq!(trust.name, "kms-api.kube-system.svc.cluster.local");

        // The certificate names no Service name in another namespace.
        let err = upstream_trust("other", Some(("kms-tls", &served)), None).unwrap_err();
        assert!(err.problem.contains("names none of"), "{err:?}");

        // An operator's CA that did not sign it is refused.
        let wrong = secret(&[("ca.crt", other)]);
        let err = upstream_trust(
            "kube-system",
            Some(("kms-tls", &served)),
            Some(("wrong-ca", &wrong)),
        )
        .unwrap_err();
        assert!(err.problem.contains("did not sign"), "{err:?}");
        assert!(err.hint.contains("--upstream-ca-secret"), "{err:?}");

        // Nothing to read the CA from.
        let err = upstream_trust("kube-system", None, None).unwrap_err();
        assert!(err.problem.contains("mount no TLS secret"), "{err:?}");
        let no_ca = secret(&[("tls.crt", leaf)]);
        let err = upstream_trust("kube-system", Some(("kms-tls", &no_ca)), None).unwrap_err();
        assert!(err.problem.contains("holds no ca.crt"), "{err:?}");

        // The operator's CA alone: the Service's full name is checked.
        let given = secret(&[("ca.crt", ca)]);
        let trust = upstream_trust("ns", None, Some(("kms-ca", &given))).unwrap();
        assert_eq!(trust.name, "kms-api.ns.svc.cluster.local");
    }

    #[test]
    fn the_gateway_selects_the_given_label() {
        let mut e = exposure(&["10.0.0.1"]);
        e.gateway_selector = ("istio".into(), "ingress".into());
        assert_eq!(
            e.gateway().object["spec"]["selector"],
            json!({"istio": "ingress"})
        );
    }

    #[test]
    fn service_port_is_read_or_checked() {
        let service: Service = serde_json::from_value(json!({
            "spec": {"ports": [{"port": 28674}]}
        }))
        .unwrap();
        assert_eq!(service_port(&service, None), Ok(28674));
        assert_eq!(service_port(&service, Some(28674)), Ok(28674));
        assert!(
            service_port(&service, Some(443))
                .unwrap_err()
                .contains("no port 443")
        );
        let two: Service = serde_json::from_value(json!({
            "spec": {"ports": [{"port": 1}, {"port": 2}]}
        }))
        .unwrap();
        assert!(service_port(&two, None).unwrap_err().contains("--port"));
    }
}
