//! The environment the kubelet gives a pod in a namespace with Services `legate` and
//! `legate-admin` (service links are on by default), shared by the settings unit tests and the
//! image tests.

/// What the kubelet injects for Services `legate` (ports `http` 8080, `https` 8443) and
/// `legate-admin` (port `admin` 8877) in the pod's namespace, plus its own `kubernetes` Service.
pub const SERVICE_LINKS: &[(&str, &str)] = &[
    ("LEGATE_SERVICE_HOST", "10.96.0.10"),
    ("LEGATE_SERVICE_PORT", "8080"),
    ("LEGATE_SERVICE_PORT_HTTP", "8080"),
    ("LEGATE_SERVICE_PORT_HTTPS", "8443"),
    ("LEGATE_PORT", "tcp://10.96.0.10:8080"),
    ("LEGATE_PORT_8080_TCP", "tcp://10.96.0.10:8080"),
    ("LEGATE_PORT_8080_TCP_PROTO", "tcp"),
    ("LEGATE_PORT_8080_TCP_PORT", "8080"),
    ("LEGATE_PORT_8080_TCP_ADDR", "10.96.0.10"),
    ("LEGATE_PORT_8443_TCP", "tcp://10.96.0.10:8443"),
    ("LEGATE_PORT_8443_TCP_PROTO", "tcp"),
    ("LEGATE_PORT_8443_TCP_PORT", "8443"),
    ("LEGATE_PORT_8443_TCP_ADDR", "10.96.0.10"),
    ("LEGATE_ADMIN_SERVICE_HOST", "10.96.0.11"),
    ("LEGATE_ADMIN_SERVICE_PORT", "8877"),
    ("LEGATE_ADMIN_SERVICE_PORT_ADMIN", "8877"),
    ("LEGATE_ADMIN_PORT", "tcp://10.96.0.11:8877"),
    ("LEGATE_ADMIN_PORT_8877_TCP", "tcp://10.96.0.11:8877"),
    ("LEGATE_ADMIN_PORT_8877_TCP_PROTO", "tcp"),
    ("LEGATE_ADMIN_PORT_8877_TCP_PORT", "8877"),
    ("LEGATE_ADMIN_PORT_8877_TCP_ADDR", "10.96.0.11"),
    ("KUBERNETES_SERVICE_HOST", "10.96.0.1"),
    ("KUBERNETES_SERVICE_PORT", "443"),
    ("KUBERNETES_SERVICE_PORT_HTTPS", "443"),
    ("KUBERNETES_PORT", "tcp://10.96.0.1:443"),
    ("KUBERNETES_PORT_443_TCP", "tcp://10.96.0.1:443"),
    ("KUBERNETES_PORT_443_TCP_PROTO", "tcp"),
    ("KUBERNETES_PORT_443_TCP_PORT", "443"),
    ("KUBERNETES_PORT_443_TCP_ADDR", "10.96.0.1"),
    ("HOSTNAME", "legate-7d9f8b6c5-x2x4z"),
];
