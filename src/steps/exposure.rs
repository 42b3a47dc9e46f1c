//! Exposure, the runbook's steps 5-12: the Certificate, the CA Secret, the
//! Gateway, VirtualService and DestinationRule that put the KMS API behind
//! the ingress gateway; or, through the Kubernetes Gateway API, the
//! Certificate, a Gateway, an HTTPRoute, the CA ConfigMap and a
//! BackendTLSPolicy (`manifests::gateway_api`). Which API is used is the
//! operator's choice (`--api`), else the one that exposes KMS already, else
//! Istio's where classic gateway pods run and the Gateway API where none do
//! and it is served; a run switches an existing setup only from Istio's
//! APIs to the Gateway API when asked, and then takes Istio's objects out
//! only once istiod says the new route serves.
//!
//! `fetch` reads, in three concurrent batches, everything the objects depend
//! on and the objects themselves: the permissions, the kms-api Service, the
//! gateway pods, every Gateway in the cluster (other applications' share the
//! gateway pods), the issuer, the CA secret named, the live objects; then the
//! pods behind the Service; then the certificate they serve. `plan` decides
//! from that alone, listing every unmet prerequisite at once (a server that
//! would conflict with another application's among them), and `apply`
//! writes what the plan changes, all at once.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Secret, Service};
use kube::Api;
use kube::api::DynamicObject;

use crate::cluster::apply::{self, ApplyOptions, Live, Planned};
use crate::cluster::datapath;
use crate::cluster::permissions::{self, Command, Scope};
use crate::cluster::rollout;
use crate::cluster::run::Run;
use crate::cluster::{Cluster, Target};
use crate::error::{Error, Result};
use crate::manifests::exposure::{self, Exposure, Issuance, KMS_SERVICE, Places, UpstreamTrust};
use crate::manifests::gateway_api::{ApiExposure, ApiPlaces, GatewayHome};
use crate::objects::apis::{self, CertManagerApi};
use crate::objects::gateway_api::{
    ApiGateway, BackendTlsPolicy, HttpRoute as ApiHttpRoute, attachments_met, first_unmet,
};
use crate::objects::owned::{self, Where};
use crate::objects::place::ObjectRef;
use crate::objects::schemas::{Gateway, GatewaySpec};
use crate::objects::shared_gateway::{self, Conflict, Merged};
use crate::steps::uninstall::{self, Held};
use crate::values::defaults;
use crate::values::duration;
use crate::values::host::Host;

/// Which API puts KMS behind a gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExposureApi {
    /// Istio's Gateway, VirtualService and DestinationRule.
    Istio,
    /// The Kubernetes Gateway API: Gateway, HTTPRoute and BackendTLSPolicy.
    GatewayApi,
}

impl ExposureApi {
    /// As typed after `--api`.
    pub fn flag_value(self) -> &'static str {
        match self {
            ExposureApi::Istio => "istio",
            ExposureApi::GatewayApi => "gateway-api",
        }
    }

    /// The API `--api` names by `word`.
    pub fn from_flag_value(word: &str) -> Option<ExposureApi> {
        [ExposureApi::Istio, ExposureApi::GatewayApi]
            .into_iter()
            .find(|api| api.flag_value() == word)
    }

    fn describe(self) -> &'static str {
        match self {
            ExposureApi::Istio => "Istio's APIs",
            ExposureApi::GatewayApi => "the Gateway API",
        }
    }
}

/// What `expose` is asked to set up.
#[derive(Debug, Clone)]
pub struct ExposeOptions {
    /// The API asked for; `None` lets `plan` choose.
    pub api: Option<ExposureApi>,
    /// With the Gateway API: attach to this existing gateway Service in the
    /// Istio namespace instead of having istiod deploy a gateway.
    pub gateway_service: Option<String>,
    /// Whether a setup made through Istio's APIs may be moved to the
    /// Gateway API when `api` asks for it, and how long the move waits for
    /// the new route to serve before Istio's objects are taken out
    /// (`expose` may move; the wizard, `None`, does not).
    pub move_timeout: Option<Duration>,
    pub hosts: Vec<Host>,
    pub issuer: String,
    /// `ClusterIssuer` or `Issuer`.
    pub issuer_kind: String,
    pub common_name: String,
    /// Serve the certificate from this secret through `credentialName`.
    pub tls_credential_name: Option<String>,
    pub gateway_selector: (String, String),
    /// Whether `gateway_selector` was chosen rather than defaulted: a
    /// selector chosen means Istio's APIs when `api` is not given.
    pub selector_given: bool,
    /// The secret in the KMS namespace whose `ca.crt` signed kms-api's certificate.
    pub upstream_ca_secret: Option<String>,
    pub path_prefix: String,
    pub rewrite: String,
    /// The kms-api Service port to route to; read from the Service when absent.
    pub port: Option<i32>,
    pub apply: ApplyOptions,
}

/// What the cluster holds that exposure depends on.
#[derive(Debug, Clone)]
pub struct Found {
    cert_manager: Option<CertManagerApi>,
    istio_version: Option<&'static str>,
    /// Where the objects are; `None` without cert-manager's or Istio's API.
    places: Option<Places>,
    /// Where the Gateway API's objects are; `None` when it is not served.
    api_places: Option<ApiPlaces>,
    service: Option<Service>,
    gateway_pods: Vec<Pod>,
    /// Every Gateway of the cluster, KMS's own among them when it exists.
    gateways: Vec<Gateway>,
    issuer_exists: bool,
    /// The CA secret `upstream_ca_secret` names, when it names one and it exists.
    given_ca: Option<Secret>,
    /// Whether the Service `--gateway-service` names exists, when it names one.
    gateway_service_exists: bool,
    /// The TLS secret the pods behind kms-api mount, by name.
    served_tls: Option<(String, Secret)>,
    live: Live,
}

impl Found {
    /// Whether the cluster serves the Gateway API's kinds `expose` writes.
    pub fn serves_gateway_api(&self) -> bool {
        self.api_places.is_some()
    }

    /// Whether a first exposure may go either way: nothing exposes KMS yet,
    /// the gateway selector's pods run, and the cluster serves the Gateway
    /// API. The number of those pods, then.
    pub fn either_api(&self) -> Option<usize> {
        (self.current_api().is_none() && self.serves_gateway_api())
            .then_some(self.gateway_pods.len())
            .filter(|pods| *pods > 0)
    }

    /// The API whose objects expose KMS now, with those of its objects
    /// that exist (Istio's first: a move leaves none of them behind).
    fn current_api(&self) -> Option<(ExposureApi, Vec<ObjectRef>)> {
        let existing = |places: Vec<&ObjectRef>| -> Vec<ObjectRef> {
            places
                .into_iter()
                .filter(|place| self.live.get(place).is_some())
                .cloned()
                .collect()
        };
        let istio_objects = self.places.as_ref().map_or_else(Vec::new, |p| {
            existing(vec![&p.gateway, &p.virtual_service, &p.destination_rule])
        });
        let api_objects = self.api_places.as_ref().map_or_else(Vec::new, |p| {
            existing(vec![&p.gateway, &p.route, &p.backend_tls])
        });
        if !istio_objects.is_empty() {
            Some((ExposureApi::Istio, istio_objects))
        } else if !api_objects.is_empty() {
            Some((ExposureApi::GatewayApi, api_objects))
        } else {
            None
        }
    }
}

/// Reads what exposure depends on. A user who lacks a permission it needs
/// is told so, with every missing one, before anything else.
pub async fn fetch(run: Run<'_>, options: &ExposeOptions) -> Result<Found> {
    let Run {
        cluster,
        target,
        served,
        write,
        ..
    } = run;
    let cert_manager = served.cert_manager();
    let istio_version = served.istio_networking();
    let (kms_ns, istio_ns) = (
        target.kms_namespace.as_str(),
        target.istio_namespace.as_str(),
    );
    let needs = permissions::for_expose(&Scope::of(target, served), options.apply.strategy);
    let needs = permissions::for_writes(&needs, write);
    let at = Where::namespaces(kms_ns, istio_ns);
    let places = Places::new(served, &at);
    let api_places = ApiPlaces::new(served, &at);

    let kms_side = kms_side(cluster, kms_ns);
    let gateway_pods = async {
        let (label, value) = &options.gateway_selector;
        let selector = BTreeMap::from([(label.clone(), value.clone())]);
        rollout::pods_with_labels(cluster, istio_ns, &selector).await
    };
    let given_ca = async {
        let Some(name) = &options.upstream_ca_secret else {
            return Ok(None);
        };
        let found = datapath::secrets(cluster, kms_ns, [name.clone()]).await?;
        Ok(found.into_values().next())
    };
    // Only where the Gateway API is served: elsewhere `--gateway-service`
    // is refused with the API that is missing.
    let gateway_service = async {
        let Some(name) = options
            .gateway_service
            .as_ref()
            .filter(|_| api_places.is_some())
        else {
            return Ok(false);
        };
        let services: Api<Service> = Api::namespaced(cluster.client(), istio_ns);
        let read = format!("read service {istio_ns}/{name}");
        Ok(cluster.call(&read, services.get_opt(name)).await?.is_some())
    };
    let issuer = async {
        match cert_manager {
            Some(api) => issuer(cluster, api, istio_ns, options).await,
            None => Ok(None),
        }
    };
    let live = async {
        let mut all: Vec<ObjectRef> = places.iter().flat_map(Places::all).collect();
        for place in api_places.iter().flat_map(ApiPlaces::all) {
            if !all.iter().any(|read| read.key() == place.key()) {
                all.push(place);
            }
        }
        apply::read_live(cluster, all).await
    };
    let gateways = apply::list_everywhere::<Gateway>(cluster, served, &owned::GATEWAY_OBJECT);
    let reads = async {
        tokio::try_join!(
            kms_side,
            gateway_pods,
            gateways,
            given_ca,
            gateway_service,
            issuer,
            live
        )
    };
    let (
        (service, served_tls),
        gateway_pods,
        gateways,
        given_ca,
        gateway_service_exists,
        issuer,
        live,
    ) = permissions::reads_allowed(cluster, Command::Expose, &needs, reads).await?;
    Ok(Found {
        cert_manager,
        istio_version,
        places,
        api_places,
        service,
        gateway_pods,
        gateways,
        issuer_exists: issuer.is_some(),
        given_ca,
        gateway_service_exists,
        served_tls,
        live,
    })
}

/// kms-api's side: the Service, the pods it selects, the certificate they
/// serve. The runbook's KMS Deployment usually runs those pods, so the
/// secrets its template mounts are read along with the pods, and the
/// certificate costs no round trip of its own; what the pods mount beyond
/// that is read after them.
async fn kms_side(
    cluster: &Cluster,
    kms_ns: &str,
) -> Result<(Option<Service>, Option<(String, Secret)>)> {
    let services: Api<Service> = Api::namespaced(cluster.client(), kms_ns);
    let deployments: Api<Deployment> = Api::namespaced(cluster.client(), kms_ns);
    let read_service = format!("read service {kms_ns}/{KMS_SERVICE}");
    let read_deployment = format!("read deployment {kms_ns}/{}", defaults::DEPLOYMENT);
    let (service, deployment) = tokio::try_join!(
        cluster.call(&read_service, services.get_opt(KMS_SERVICE)),
        cluster.call(&read_deployment, deployments.get_opt(defaults::DEPLOYMENT)),
    )?;
    let labels = service
        .as_ref()
        .and_then(|service| service.spec.as_ref()?.selector.clone())
        .unwrap_or_default();
    if labels.is_empty() {
        return Ok((service, None));
    }
    let (_, served) =
        datapath::pods_and_served_tls_secret(cluster, kms_ns, &labels, deployment.as_ref()).await?;
    Ok((service, served))
}

/// The issuer the Certificate names: an Issuer in the Certificate's
/// namespace, or a ClusterIssuer.
async fn issuer(
    cluster: &Cluster,
    api: CertManagerApi,
    istio_namespace: &str,
    options: &ExposeOptions,
) -> Result<Option<DynamicObject>> {
    let (plural, namespace) = issuer_place(&options.issuer_kind, istio_namespace);
    let resource = apis::api_resource(api.group(), api.version(), &options.issuer_kind, plural);
    let issuers: Api<DynamicObject> = match namespace {
        Some(namespace) => Api::namespaced_with(cluster.client(), namespace, &resource),
        None => Api::all_with(cluster.client(), &resource),
    };
    cluster
        .call(
            &format!("read {plural} {}", options.issuer),
            issuers.get_opt(&options.issuer),
        )
        .await
}

/// The issuer kind's plural and, for an Issuer, its namespace.
fn issuer_place<'a>(kind: &str, istio_namespace: &'a str) -> (&'static str, Option<&'a str>) {
    if kind == "Issuer" {
        ("issuers", Some(istio_namespace))
    } else {
        ("clusterissuers", None)
    }
}

/// What `expose` does: the objects it writes, and those of Istio's APIs it
/// takes out once the Gateway API's route serves (when it moves KMS from
/// one to the other).
#[derive(Debug, Clone)]
pub struct ExposurePlan {
    pub writes: Vec<Planned>,
    pub retiring: Vec<Held>,
}

/// The objects as they should be, through the API chosen, each with what
/// writing it changes; or every prerequisite that is not met.
pub fn plan(found: &Found, target: &Target, options: &ExposeOptions) -> Result<ExposurePlan> {
    let (api, retiring) = chosen_api(found, target, options)?;
    let writes = match api {
        ExposureApi::Istio => plan_istio(found, target, options),
        ExposureApi::GatewayApi => plan_gateway_api(found, target, options),
    }?;
    Ok(ExposurePlan { writes, retiring })
}

/// The API asked for, else the one exposing KMS now, else Istio's where
/// its classic gateway pods run or a gateway selector was given, else the
/// Gateway API where it is served.
/// Refuses to switch a setup made through the other API, but for a move
/// from Istio's APIs to the Gateway API that `options` allow: then the
/// objects to take out once the new route serves.
fn chosen_api(
    found: &Found,
    target: &Target,
    options: &ExposeOptions,
) -> Result<(ExposureApi, Vec<Held>)> {
    let current = found.current_api();
    let api = match (options.api, current) {
        (Some(ExposureApi::GatewayApi), Some((ExposureApi::Istio, _)))
            if options.move_timeout.is_some() =>
        {
            return Ok((ExposureApi::GatewayApi, retiring(found, options)?));
        }
        (Some(asked), Some((current, objects))) if asked != current => {
            return Err(exposed_otherwise(target, asked, current, &objects));
        }
        (Some(asked), _) => asked,
        (None, Some((current, _))) => current,
        (None, None)
            if found.gateway_pods.is_empty()
                && !options.selector_given
                && found.api_places.is_some() =>
        {
            ExposureApi::GatewayApi
        }
        (None, None) => ExposureApi::Istio,
    };
    Ok((api, Vec::new()))
}

/// Istio's objects a move to the Gateway API takes out: the Gateway,
/// VirtualService, DestinationRule and the gateway's CA Secret, as read.
/// The move keeps KMS's address: it needs `--gateway-service`, the
/// Service in front of the gateway pods that serve KMS now; and it takes
/// out only objects no one but the plugin manages.
fn retiring(found: &Found, options: &ExposeOptions) -> Result<Vec<Held>> {
    if options.gateway_service.is_none() {
        return Err(Error::InvalidFlag {
            flag: "--gateway-service",
            reason: "moving KMS from Istio's APIs to the Gateway API keeps the gateway clients \
                     reach it at: name the Service in front of those gateway pods (for example \
                     --gateway-service istio-ingressgateway)"
                .into(),
        });
    }
    let Some(places) = &found.places else {
        return Ok(Vec::new());
    };
    let rows = [
        (&places.gateway, owned::GATEWAY_OBJECT),
        (&places.virtual_service, owned::VIRTUAL_SERVICE_OBJECT),
        (&places.destination_rule, owned::DESTINATION_RULE_OBJECT),
        (&places.ca_secret, owned::CA_SECRET_OBJECT),
    ];
    let mut held = Vec::new();
    for (place, row) in rows {
        let Some(object) = found.live.get(place) else {
            continue;
        };
        let others = uninstall::other_managers(object);
        if !others.is_empty() {
            return Err(Error::ExposedOtherwise {
                current: ExposureApi::Istio.describe(),
                asked: ExposureApi::GatewayApi.describe(),
                objects: vec![place.display_name()],
                hint: format!(
                    "{} in {} is managed by {} too, so expose does not take it out: move it by \
                     hand, or remove the other managers' fields first",
                    place.display_name(),
                    place.namespace.as_deref().unwrap_or_default(),
                    others.join(", ")
                ),
            });
        }
        held.push(Held {
            resource: place.resource.clone(),
            namespace: place.namespace.clone().unwrap_or_default(),
            name: place.name.clone(),
            owned: row,
            object: Some(object.clone()),
        });
    }
    Ok(held)
}

/// The refusal to switch KMS to `asked` while `objects` of `current` expose
/// it: the command that keeps it as it is, and the one that takes the old
/// objects out first.
fn exposed_otherwise(
    target: &Target,
    asked: ExposureApi,
    current: ExposureApi,
    objects: &[ObjectRef],
) -> Error {
    let mut by_namespace: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for place in objects {
        if let Some(ns) = place.namespace.as_deref() {
            by_namespace
                .entry(ns)
                .or_default()
                .push(place.display_name());
        }
    }
    let deletions: Vec<String> = by_namespace
        .iter()
        .map(|(ns, names)| {
            format!(
                "kubectl delete{} -n {ns} {}",
                target.kubectl_flags(),
                names.join(" ")
            )
        })
        .collect();
    Error::ExposedOtherwise {
        current: current.describe(),
        asked: asked.describe(),
        objects: objects.iter().map(ObjectRef::display_name).collect(),
        hint: format!(
            "run expose with --api {} (or without --api) to keep it; to move KMS to {}, take \
             those objects out first (requests to KMS fail until the new route serves): {}",
            current.flag_value(),
            asked.describe(),
            deletions.join(" && ")
        ),
    }
}

/// Through Istio's APIs: the five objects of the runbook.
fn plan_istio(found: &Found, target: &Target, options: &ExposeOptions) -> Result<Vec<Planned>> {
    let mut unmet = missing_apis(found);
    let port = route_port(found, target, options)
        .map_err(|err| unmet.push(err))
        .ok();
    if found.gateway_pods.is_empty() {
        let (label, value) = &options.gateway_selector;
        unmet.push(Error::NoGatewayPods {
            namespace: target.istio_namespace.clone(),
            selector: format!("{label}={value}"),
        });
    }
    unmet.extend(missing_issuer(found, target, options));
    let upstream = upstream(found, target, options, &mut unmet);
    Error::unmet(unmet)?;
    let (Some(places), Some(port), Some(upstream)) = (found.places.clone(), port, upstream) else {
        unreachable!("every missing part was reported as unmet");
    };
    let exposure = Exposure {
        places,
        issuance: issuance(options),
        gateway_selector: options.gateway_selector.clone(),
        server_delivery: exposure::server_delivery(
            options.tls_credential_name.as_deref(),
            &found.gateway_pods,
        ),
        upstream,
        ca_delivery: exposure::ca_delivery(&found.gateway_pods),
        path_prefix: options.path_prefix.clone(),
        rewrite: options.rewrite.clone(),
        port,
    };
    refuse_conflicts(
        found,
        &exposure.places.gateway,
        &exposure.gateway_spec(),
        options,
    )?;
    Ok(apply::plan(exposure.objects(), &found.live))
}

/// Through the Gateway API: the Certificate, a Gateway of istiod's class,
/// the route, the CA ConfigMap and the BackendTLSPolicy.
fn plan_gateway_api(
    found: &Found,
    target: &Target,
    options: &ExposeOptions,
) -> Result<Vec<Planned>> {
    let mut unmet = Vec::new();
    if found.cert_manager.is_none() {
        unmet.extend(missing_apis(found).into_iter().take(1));
    }
    if found.api_places.is_none() {
        unmet.push(Error::Missing {
            kind: "API",
            namespace: "cluster".into(),
            name: "gateway.networking.k8s.io/v1 (Gateway, HTTPRoute, BackendTLSPolicy)".into(),
            hint: "install the Gateway API's standard CRDs, v1.4 or later (Istio 1.28 and later \
                   read BackendTLSPolicy at v1), or expose through Istio's APIs with --api istio"
                .into(),
        });
    }
    let port = route_port(found, target, options)
        .map_err(|err| unmet.push(err))
        .ok();
    unmet.extend(missing_issuer(found, target, options));
    if let Some(name) = &options.gateway_service
        && !found.gateway_service_exists
    {
        let ns = &target.istio_namespace;
        unmet.push(Error::Missing {
            kind: "Service",
            namespace: ns.clone(),
            name: name.clone(),
            hint: format!(
                "name the Service in front of the gateway pods clients reach KMS at with \
                 --gateway-service (`kubectl get services -n {ns}{}` lists them), or leave the \
                 flag out for a gateway of KMS's own",
                target.kubectl_flags()
            ),
        });
    }
    let upstream = upstream(found, target, options, &mut unmet);
    Error::unmet(unmet)?;
    let (Some(places), Some(port), Some(upstream)) = (found.api_places.clone(), port, upstream)
    else {
        unreachable!("every missing part was reported as unmet");
    };
    let exposure = ApiExposure {
        places,
        issuance: issuance(options),
        tls_secret: options
            .tls_credential_name
            .clone()
            .unwrap_or_else(|| owned::CERTIFICATE.to_owned()),
        home: match &options.gateway_service {
            Some(service) => GatewayHome::Attached(service.clone()),
            None => GatewayHome::Deployed,
        },
        upstream,
        path_prefix: options.path_prefix.clone(),
        rewrite: options.rewrite.clone(),
        port,
        port_name: found.service.as_ref().and_then(|service| {
            let spec = service.spec.as_ref()?;
            let port = spec.ports.iter().flatten().find(|p| p.port == port)?;
            port.name.clone()
        }),
    };
    Ok(apply::plan(exposure.objects(), &found.live))
}

/// What the gateway's certificate is issued for, from the options.
fn issuance(options: &ExposeOptions) -> Issuance {
    Issuance {
        issuer: options.issuer.clone(),
        issuer_kind: options.issuer_kind.clone(),
        common_name: options.common_name.clone(),
        hosts: options.hosts.clone(),
    }
}

/// Refuses a Gateway whose server would collide with another
/// application's on the same gateway pods: istiod would serve only one of
/// them. KMS's own Gateway, as an earlier run wrote it, is the one being
/// rewritten, not a neighbour.
fn refuse_conflicts(
    found: &Found,
    place: &ObjectRef,
    spec: &GatewaySpec,
    options: &ExposeOptions,
) -> Result<()> {
    let written = found.live.get(place);
    let kms = Merged {
        namespace: place.namespace.as_deref().unwrap_or_default(),
        name: &place.name,
        created: written.and_then(|gw| gw.metadata.creation_timestamp.as_ref().map(|t| t.0)),
        spec,
    };
    let conflicts = shared_gateway::conflicts(&kms, &found.gateways, &found.gateway_pods);
    if conflicts.is_empty() {
        return Ok(());
    }
    let (label, value) = &options.gateway_selector;
    let by_ip = options.hosts.iter().any(Host::is_ip);
    let mut ways = Vec::new();
    if by_ip {
        ways.push(
            "an IP address among --host makes KMS claim `*` (clients that connect to an \
             address send no name to tell servers apart): give KMS a DNS name with --host \
             instead, which clients send and the gateway routes by"
                .to_owned(),
        );
    } else {
        ways.push("choose --host names no other Gateway on these pods claims".to_owned());
    }
    ways.push(format!(
        "serve KMS on a gateway of its own with --gateway-selector (now {label}={value})"
    ));
    ways.push("or move the other application's server to another port or other hosts".to_owned());
    Err(Error::SharedGatewayConflict {
        conflicts: conflicts.iter().map(Conflict::describe).collect(),
        hint: ways.join("; "),
    })
}

/// The APIs of cert-manager and Istio, when the cluster does not serve them.
fn missing_apis(found: &Found) -> Vec<Error> {
    let mut unmet = Vec::new();
    if found.cert_manager.is_none() {
        unmet.push(Error::Missing {
            kind: "API",
            namespace: "cluster".into(),
            name: "cert-manager.io/v1 or certmanager.k8s.io/v1alpha1".into(),
            hint: "install cert-manager: the cluster serves neither of its Certificate APIs".into(),
        });
    }
    if found.istio_version.is_none() {
        unmet.push(Error::Missing {
            kind: "API",
            namespace: "cluster".into(),
            name: "networking.istio.io (v1, v1beta1 or v1alpha3)".into(),
            hint: "install Istio: the cluster does not serve its networking API".into(),
        });
    }
    unmet
}

/// The kms-api Service's port the route goes to.
fn route_port(found: &Found, target: &Target, options: &ExposeOptions) -> Result<i32> {
    let Some(service) = &found.service else {
        return Err(Error::Missing {
            kind: "Service",
            namespace: target.kms_namespace.clone(),
            name: KMS_SERVICE.into(),
            hint: "KMS must be installed first; check --kms-namespace".into(),
        });
    };
    exposure::service_port(service, options.port).map_err(|reason| Error::InvalidFlag {
        flag: "--port",
        reason,
    })
}

/// The issuer the Certificate names, when it does not exist.
fn missing_issuer(found: &Found, target: &Target, options: &ExposeOptions) -> Option<Error> {
    let api = found.cert_manager.filter(|_| !found.issuer_exists)?;
    let (plural, namespace) = issuer_place(&options.issuer_kind, &target.istio_namespace);
    Some(Error::Missing {
        kind: if namespace.is_some() {
            "Issuer"
        } else {
            "ClusterIssuer"
        },
        namespace: namespace.unwrap_or("cluster").into(),
        name: options.issuer.clone(),
        hint: format!(
            "name an existing one with --issuer and --issuer-kind; `kubectl get {plural}.{}` lists them",
            api.group()
        ),
    })
}

/// How the gateway must verify kms-api; `None`, with the reason in `unmet`, when
/// it cannot be told (it can only be once kms-api and the CA secret named
/// were found).
fn upstream(
    found: &Found,
    target: &Target,
    options: &ExposeOptions,
    unmet: &mut Vec<Error>,
) -> Option<UpstreamTrust> {
    let kms_namespace = &target.kms_namespace;
    let given_ca = match (&options.upstream_ca_secret, &found.given_ca) {
        (Some(name), Some(secret)) => Some((name.as_str(), secret)),
        (Some(name), None) => {
            unmet.push(Error::Missing {
                kind: "Secret",
                namespace: kms_namespace.clone(),
                name: name.clone(),
                hint: "name an existing Secret holding ca.crt with --upstream-ca-secret".into(),
            });
            return None;
        }
        (None, _) => None,
    };
    found.service.as_ref()?;
    let served = found
        .served_tls
        .as_ref()
        .map(|(name, secret)| (name.as_str(), secret));
    exposure::upstream_trust(kms_namespace, served, given_ca)
        .map_err(|unverifiable| {
            unmet.push(Error::DataPath {
                problem: unverifiable.problem,
                hint: unverifiable.hint,
            })
        })
        .ok()
}

/// Writes what the plan changes, as `write` says; then, for a move, takes
/// out Istio's objects once the Gateway API's route serves.
pub async fn apply(
    run: Run<'_>,
    found: &Found,
    plan: &ExposurePlan,
    options: &ExposeOptions,
) -> Result<()> {
    apply::write_all(
        run.cluster,
        &plan.writes,
        options.apply,
        run.write,
        run.journal,
    )
    .await?;
    retire(run, found, &plan.retiring, options).await
}

/// Waits until istiod says the Gateway is programmed and the route and the
/// policy are accepted with their references resolved, each for its
/// current generation; then deletes each of `retiring` if it is unchanged
/// since it was read. While the route does not serve, Istio's objects stay
/// and keep serving KMS.
async fn retire(
    run: Run<'_>,
    found: &Found,
    retiring: &[Held],
    options: &ExposeOptions,
) -> Result<()> {
    let (Some(places), Some(timeout), false) =
        (&found.api_places, options.move_timeout, retiring.is_empty())
    else {
        return Ok(());
    };
    if run.write.dry_run.is_some() {
        for held in retiring {
            run.journal.done(&format!(
                "{} would be deleted once the Gateway API's route serves (dry run)",
                held.display_name()
            ));
        }
        return Ok(());
    }
    let cluster = run.cluster;
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let (gateway, route, policy) = tokio::try_join!(
            apply::read::<ApiGateway>(cluster, &places.gateway),
            apply::read::<ApiHttpRoute>(cluster, &places.route),
            apply::read::<BackendTlsPolicy>(cluster, &places.backend_tls),
        )?;
        let Err(pending) = serving(gateway.as_ref(), route.as_ref(), policy.as_ref()) else {
            break;
        };
        if std::time::Instant::now() >= deadline {
            return Err(Error::NotServing {
                timeout: duration::display(timeout),
                pending,
                kept: retiring.iter().map(Held::display_name).collect(),
                hint: format!(
                    "see `kubectl describe gateways.gateway.networking.k8s.io {} -n {}{}`; run \
                     expose again once it is programmed (or with a longer --timeout)",
                    places.gateway.name,
                    places.gateway.namespace.as_deref().unwrap_or_default(),
                    run.target.kubectl_flags()
                ),
            });
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    for held in retiring {
        let object = held.object.as_ref().expect("a retiring object was read");
        uninstall::delete(cluster, held, object, run.write).await?;
        run.journal.done(&format!(
            "{} deleted: the Gateway API's route serves KMS",
            held.display_name()
        ));
    }
    Ok(())
}

/// Whether istiod says the Gateway API's objects serve: `Err` with what it
/// has not said yet.
fn serving(
    gateway: Option<&ApiGateway>,
    route: Option<&ApiHttpRoute>,
    policy: Option<&BackendTlsPolicy>,
) -> std::result::Result<(), String> {
    let (Some(gateway), Some(route), Some(policy)) = (gateway, route, policy) else {
        return Err("the Gateway API's objects are not all there".into());
    };
    let status = gateway.status.clone().unwrap_or_default();
    if let Some(problem) = first_unmet(
        &status.conditions,
        gateway.metadata.generation,
        &["Accepted", "Programmed"],
    ) {
        return Err(format!("Gateway: {problem}"));
    }
    for (what, status, generation) in [
        (
            "HTTPRoute",
            route.status.as_ref(),
            route.metadata.generation,
        ),
        (
            "BackendTLSPolicy",
            policy.status.as_ref(),
            policy.metadata.generation,
        ),
    ] {
        match attachments_met(status, generation) {
            Ok(_) => {}
            Err(Some(problem)) => return Err(format!("{what} {problem}")),
            Err(None) => return Err(format!("istiod has not attached the {what} yet")),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::values::host::parse_host;

    fn options() -> ExposeOptions {
        ExposeOptions {
            api: None,
            gateway_service: None,
            move_timeout: Some(Duration::from_secs(1)),
            hosts: vec![parse_host("9.42.136.50").unwrap()],
            issuer: defaults::ISSUER.into(),
            issuer_kind: defaults::ISSUER_KIND.into(),
            common_name: defaults::COMMON_NAME.into(),
            tls_credential_name: None,
            gateway_selector: ("istio".into(), "ingressgateway".into()),
            selector_given: false,
            upstream_ca_secret: Some("kms-ca".into()),
            path_prefix: defaults::PATH_PREFIX.into(),
            rewrite: defaults::REWRITE.into(),
            port: None,
            apply: ApplyOptions::default(),
        }
    }

    #[test]
    fn every_unmet_prerequisite_is_listed_at_once() {
        let nothing = Found {
            cert_manager: None,
            istio_version: None,
            places: None,
            api_places: None,
            service: None,
            gateway_pods: Vec::new(),
            gateways: Vec::new(),
            issuer_exists: false,
            given_ca: None,
            gateway_service_exists: false,
            served_tls: None,
            live: Live::default(),
        };
        let err = plan(&nothing, &Target::default(), &options())
            .err()
            .unwrap();
        let problems: Vec<String> = err
            .into_problems()
            .iter()
            .map(ToString::to_string)
            .collect();
        let expected = [
            "cert-manager.io/v1",
            "networking.istio.io",
            "kms-api",
            "istio=ingressgateway",
            "kms-ca",
        ];
        assert_eq!(problems.len(), expected.len(), "{problems:?}");
        for (problem, names) in problems.iter().zip(expected) {
            assert!(problem.contains(names), "{problem} should name {names}");
        }
    }
}
