//! Ready-made scenarios: seed 000 (`conf/seed-000-ingress.yaml`) with its backends.

use crate::backend::Backend;
use crate::certs::{ca_cert, copy_credentials, credentials_dir, require_certs_example};
use crate::cmd::Curl;
use crate::config::{seed000_yaml, ConfigDir, Seed000Ports};
use crate::free_port;
use crate::gateway::{Gateway, GatewayOptions};

pub const FRONTEND_HOST: &str = "frontend.example.com";
pub const PARTNER_HOST: &str = "partner.example.com";

/// Seed 000 running: `frontend` backend, `backend` v1 and v2, and a gateway on
/// [`Seed000::port`] serving frontend.example.com (SIMPLE) and
/// partner.example.com (MUTUAL, Acme CA).
pub struct Seed000 {
    // Field order is drop order: the gateway goes first.
    pub gateway: Gateway,
    pub frontend: Backend,
    pub backend_v1: Backend,
    pub backend_v2: Backend,
    pub port: u16,
    pub conf: ConfigDir,
    pub config_path: std::path::PathBuf,
}

impl Seed000 {
    pub fn start() -> Seed000 {
        Self::start_with(&[])
    }

    /// Start with extra `tlsgate run` arguments.
    pub fn start_with(extra: &[&str]) -> Seed000 {
        Self::start_custom(extra, |_, yaml| yaml)
    }

    /// Start with extra arguments and the YAML passed through `edit` (which
    /// may also put files, such as a copy of the credentials, into the folder).
    pub fn start_custom(
        extra: &[&str],
        edit: impl FnOnce(&ConfigDir, String) -> String,
    ) -> Seed000 {
        Self::try_start(GatewayOptions::default(), extra, edit).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Seed 000 on its own copy of the credentials (in `conf/credentials`),
    /// its partner host trusting the CA `bundle` (PEM), and `runtime`
    /// (indented lines, e.g. `"  tlsLibrary: rustls\n"`) added to its
    /// GatewayRuntime.
    pub fn start_partner_trusting(bundle: &[u8], runtime: &str) -> Seed000 {
        const RUNTIME_LINE: &str = "  accessLog:\n    format: text\n";
        Self::start_custom(&[], |conf, yaml| {
            let creds = conf.path().join("credentials");
            copy_credentials(&creds).expect("copy credentials");
            std::fs::write(creds.join("partner-credential/ca.crt"), bundle).unwrap();
            assert!(
                yaml.contains(RUNTIME_LINE),
                "the seed's GatewayRuntime changed"
            );
            yaml.replace(
                &credentials_dir().display().to_string(),
                &creds.display().to_string(),
            )
            .replace(RUNTIME_LINE, &format!("{RUNTIME_LINE}{runtime}"))
        })
    }

    /// [`Seed000::start_custom`] with [`GatewayOptions`]; an error (with the
    /// gateway's logs) if it does not become ready.
    pub fn try_start(
        opts: GatewayOptions,
        extra: &[&str],
        edit: impl FnOnce(&ConfigDir, String) -> String,
    ) -> Result<Seed000, String> {
        require_certs_example();
        let frontend = Backend::start("frontend-v1");
        let backend_v1 = Backend::start("backend-v1");
        let backend_v2 = Backend::start("backend-v2");
        let ports = Seed000Ports {
            gateway: free_port(),
            frontend: frontend.port(),
            backend_v1: backend_v1.port(),
            backend_v2: backend_v2.port(),
            admin: free_port(),
        };
        let conf = ConfigDir::new();
        let yaml = edit(&conf, seed000_yaml(&ports));
        let config_path = conf.write("seed-000-ingress.yaml", &yaml);
        let mut args = vec!["--config".to_string(), config_path.display().to_string()];
        args.extend(extra.iter().map(|s| s.to_string()));
        let gateway = Gateway::start_with(&args, opts)?;
        Ok(Seed000 {
            gateway,
            frontend,
            backend_v1,
            backend_v2,
            port: ports.gateway,
            conf,
            config_path,
        })
    }

    /// `https://frontend.example.com:<port><path>`, server verified with the example CA.
    pub fn frontend(&self, path: &str) -> Curl {
        Curl::https(FRONTEND_HOST, self.port, path).cacert(&ca_cert("example"))
    }

    /// `https://partner.example.com:<port><path>`, `-k` (no client certificate yet).
    pub fn partner(&self, path: &str) -> Curl {
        Curl::https(PARTNER_HOST, self.port, path).insecure()
    }

    /// Requests that reached any backend.
    pub fn backend_total(&self) -> usize {
        self.frontend.count() + self.backend_v1.count() + self.backend_v2.count()
    }
}
