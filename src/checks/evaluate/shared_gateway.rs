//! The shared gateway: what istiod makes of KMS's Gateway beside every other
//! Gateway on the same gateway pods. On one port a host claimed twice goes to
//! the older Gateway only (IST0145), so a green Gateway check alone does not
//! mean the gateway serves KMS's hosts to KMS. Also the Gateway of an earlier
//! version of the plugin, which claimed `*` for names too: it takes every
//! request no other server names, so `expose` narrows it to KMS's hosts.

use crate::checks::snapshot::{
    Names, Snapshot, certificate_hosts, expose_command, expose_command_for,
};
use crate::checks::{Check, CheckId};
use crate::manifests::exposure::served_hosts;
use crate::objects::schemas::Gateway;
use crate::objects::shared_gateway::{self, Merged};
use crate::terminal::wording::count;
use crate::values::host::Host;

pub fn check(s: &Snapshot, names: &Names, gateway: &Gateway) -> Check {
    let conflicts =
        shared_gateway::conflicts(&Merged::of(gateway), &s.neighbour_gateways, &s.gateway_pods);
    let expose = expose_command(s, names);
    let hosts = certificate_hosts(s);
    let by_ip = hosts.iter().any(Host::is_ip);
    let (lost, kept): (Vec<_>, Vec<_>) = conflicts.iter().partition(|c| !c.kms_kept);
    if !lost.is_empty() {
        let ways = if by_ip {
            let names_only: Vec<String> = hosts
                .iter()
                .filter_map(|host| match host {
                    Host::Dns(name) => Some(name.clone()),
                    Host::Ip(_) => None,
                })
                .collect();
            format!(
                "KMS claims `*` because an IP address is among its hosts: run {} (DNS names \
                 only), or the same with --gateway-selector naming a gateway of its own",
                expose_command_for(s, names, &names_only.iter().collect::<Vec<_>>())
            )
        } else {
            format!(
                "run {expose} with hosts no other Gateway claims, or with --gateway-selector \
                 naming a gateway of its own; or change the other Gateway"
            )
        };
        let described: Vec<String> = lost.iter().map(|c| c.describe()).collect();
        return Check::fail(CheckId::SharedGateway, described.join("; "), ways);
    }
    if !kept.is_empty() {
        let described: Vec<String> = kept.iter().map(|c| c.describe()).collect();
        return Check::warn(
            CheckId::SharedGateway,
            described.join("; "),
            "KMS is served; the other application is not: its owner should choose other hosts",
        );
    }
    let claimed = gateway
        .spec
        .https_server()
        .map(|server| server.hosts.clone())
        .unwrap_or_default();
    let wanted = served_hosts(&hosts);
    if !hosts.is_empty() && claimed != wanted {
        return Check::warn(
            CheckId::SharedGateway,
            format!(
                "the Gateway claims {} where KMS's hosts need only {}: it takes other \
                 applications' requests on the same gateway",
                claimed.join(", "),
                wanted.join(", ")
            ),
            format!("run {expose}: it narrows the Gateway to KMS's hosts"),
        );
    }
    Check::pass(
        CheckId::SharedGateway,
        format!(
            "{} on its gateway pods, none claiming its hosts",
            count(
                s.neighbour_gateways.len() as i64,
                "other Gateway",
                "other Gateways"
            )
        ),
    )
}
