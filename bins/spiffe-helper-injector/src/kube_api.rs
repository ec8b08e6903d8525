//! [`WebhookApi`] on the Kubernetes API with kube's in-cluster configuration (the pod's
//! service account token and CA, `KUBERNETES_SERVICE_HOST`).

use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use kube::api::{Api, Patch, PatchParams};
use serde_json::Value;

use crate::ca_bundle::{ApiError, WebhookApi, WebhookCa};

#[cfg(test)]
mod tests;

/// The one configuration the injector manages.
pub struct KubeWebhookApi {
    api: Api<MutatingWebhookConfiguration>,
    name: String,
}

impl KubeWebhookApi {
    /// A client from the in-cluster configuration.
    ///
    /// # Errors
    /// Not running in a pod (no service account, no `KUBERNETES_SERVICE_HOST`), or the client
    /// cannot be built.
    pub fn in_cluster(name: &str) -> anyhow::Result<Self> {
        let config = kube::Config::incluster().map_err(|err| {
            anyhow::anyhow!(
                "--webhook-configuration needs the in-cluster Kubernetes configuration \
                 (a pod with a service account token): {err}"
            )
        })?;
        Ok(Self::new(kube::Client::try_from(config)?, name))
    }

    /// On `client` (the tests give one that talks to a fake API server).
    fn new(client: kube::Client, name: &str) -> Self {
        Self {
            api: Api::all(client),
            name: name.to_owned(),
        }
    }

    fn error(&self, operation: &'static str, err: &kube::Error) -> ApiError {
        let hint = match err {
            kube::Error::Api(status) if status.code == 403 => {
                " (the service account needs get and patch on this mutatingwebhookconfiguration)"
            }
            kube::Error::Api(status) if status.code == 404 => {
                " (create the MutatingWebhookConfiguration, or fix --webhook-configuration)"
            }
            _ => "",
        };
        ApiError {
            operation,
            name: self.name.clone(),
            message: format!("{err}{hint}"),
        }
    }
}

impl WebhookApi for KubeWebhookApi {
    fn name(&self) -> &str {
        &self.name
    }

    async fn webhooks(&self) -> Result<Vec<WebhookCa>, ApiError> {
        let configuration = self
            .api
            .get(&self.name)
            .await
            .map_err(|err| self.error("get", &err))?;
        Ok(configuration
            .webhooks
            .unwrap_or_default()
            .into_iter()
            .map(|webhook| WebhookCa {
                name: webhook.name,
                ca_bundle: webhook.client_config.ca_bundle.map(|bytes| bytes.0),
            })
            .collect())
    }

    async fn patch(&self, patch: Value) -> Result<(), ApiError> {
        let patch: json_patch::Patch = serde_json::from_value(patch).map_err(|err| ApiError {
            operation: "patch",
            name: self.name.clone(),
            message: format!("invalid JSON patch: {err}"),
        })?;
        self.api
            .patch(
                &self.name,
                &PatchParams::default(),
                &Patch::Json::<()>(patch),
            )
            .await
            .map_err(|err| self.error("patch", &err))?;
        Ok(())
    }
}
