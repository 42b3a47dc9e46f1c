//! The runbook's step 13: the IdentityMappingPolicy that maps an STS source
//! identity to the KMS targets, using the API-key secret. `mappingType` and
//! `sourceAuthority` are fixed by the runbook and not offered as options.

use serde_json::json;

use crate::cluster::apply::{Desired, ObjectRef};
use crate::cluster::discovery::{IDENTITY_POLICY_GROUP, IDENTITY_POLICY_VERSION};
use crate::values::crn::Crn;

pub const MAPPING_TYPE: &str = "inbound";
pub const SOURCE_AUTHORITY: &str = "ibm-cloud-iam";

/// Where the policy `name` lives.
pub fn place(namespace: &str, name: &str) -> ObjectRef {
    ObjectRef::new(
        (
            IDENTITY_POLICY_GROUP,
            IDENTITY_POLICY_VERSION,
            "IdentityMappingPolicy",
            "identitymappingpolicies",
        ),
        Some(namespace),
        name,
    )
}

pub struct IdentityMapping<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    pub source: &'a Crn,
    pub targets: &'a [Crn],
    pub secret: &'a str,
    pub secret_key: &'a str,
}

impl IdentityMapping<'_> {
    pub fn policy(&self) -> Desired {
        let targets: Vec<&str> = self.targets.iter().map(Crn::as_str).collect();
        Desired::at(
            place(self.namespace, self.name),
            json!({"spec": {
                "identityMapping": {
                    "sourceIdentity": self.source.as_str(),
                    "targetCredentials": {
                        "apiKeyRef": {"propertyName": self.secret_key, "secretName": self.secret},
                    },
                },
                "mappingType": MAPPING_TYPE,
                "sourceAuthority": SOURCE_AUTHORITY,
                "targetResources": targets,
            }}),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::values::crn;

    #[test]
    fn policy_has_the_runbooks_shape() {
        let source = crn::parse("crn:v1:staging:public:sts:us-south:a/1234:123456789::").unwrap();
        let target =
            crn::parse_kms_target("crn:v1:icp:private:kms:mycluster:n/kube-system:0d70::").unwrap();
        let policy = IdentityMapping {
            namespace: "istio-system",
            name: "stspolicy",
            source: &source,
            targets: std::slice::from_ref(&target),
            secret: "sts-apikey",
            secret_key: "apikey",
        }
        .policy();
        let spec = &policy.object["spec"];
        assert_eq!(policy.object["apiVersion"], "policy.ibm.com/v1alpha1");
        assert_eq!(spec["mappingType"], "inbound");
        assert_eq!(spec["sourceAuthority"], "ibm-cloud-iam");
        assert_eq!(spec["identityMapping"]["sourceIdentity"], source.as_str());
        assert_eq!(
            spec["identityMapping"]["targetCredentials"]["apiKeyRef"]["secretName"],
            "sts-apikey"
        );
        assert_eq!(spec["targetResources"], json!([target.as_str()]));
    }
}
