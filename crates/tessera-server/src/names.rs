//! The names a server answers logins for (protocol v2, docs/formats.md "Login challenge"): a client signs the
//! name it knows the server by, and the server accepts the login only for one of its own names, so that a server
//! relaying another's challenge cannot log in there as the client.

use std::net::{IpAddr, SocketAddr};

/// The server's own names, each a normalised origin ([`tessera_wire::server_name`]).
#[derive(Clone, Debug)]
pub(crate) struct ServerNames {
    names: Vec<String>,
    /// Listening on an unspecified address with no configured name: the request's `Host` names the server.
    host_fallback: bool,
}

impl ServerNames {
    /// The configured public URLs, plus, when listening on a specific address, `http://<ip>:<port>` (and for
    /// loopback `http://localhost:<port>`). With neither (an unspecified address and no public URL), the
    /// request's `Host` header is trusted instead.
    ///
    /// # Errors
    /// A message naming the public URL that is not a server URL.
    pub(crate) fn new(public_urls: &[String], listening: SocketAddr) -> Result<Self, String> {
        let mut names = Vec::new();
        for url in public_urls {
            let name = tessera_wire::server_name(url)
                .map_err(|reason| format!("invalid public URL: {reason}"))?;
            if !names.contains(&name) {
                names.push(name);
            }
        }
        let ip = listening.ip();
        if !ip.is_unspecified() {
            let host = match ip {
                IpAddr::V4(v4) => v4.to_string(),
                IpAddr::V6(v6) => format!("[{v6}]"),
            };
            names.push(format!("http://{host}:{}", listening.port()));
            if ip.is_loopback() {
                names.push(format!("http://localhost:{}", listening.port()));
            }
        }
        let host_fallback = names.is_empty();
        Ok(Self {
            names,
            host_fallback,
        })
    }

    /// Whether logins are checked against the request's `Host` header (see [`ServerNames::new`]).
    pub(crate) fn falls_back_to_host(&self) -> bool {
        self.host_fallback
    }

    /// Whether `claimed`, the name a client signed, is one of this server's: one of its names, or, in the
    /// fallback, the origin of the request's `host` under `http` or `https` (a TLS proxy in front changes it).
    pub(crate) fn accepts(&self, claimed: &str, host: Option<&str>) -> bool {
        if self.names.iter().any(|name| name == claimed) {
            return true;
        }
        self.host_fallback
            && host.is_some_and(|host| {
                ["http", "https"].iter().any(|scheme| {
                    tessera_wire::server_name(&format!("{scheme}://{host}"))
                        .is_ok_and(|name| name == claimed)
                })
            })
    }

    /// What a client should use, for the message of a refused login.
    pub(crate) fn expected(&self) -> String {
        if self.host_fallback {
            "the origin of the URL the request was sent to".to_owned()
        } else {
            self.names.join(" or ")
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a test fails loudly")]

    use super::*;

    #[test]
    fn a_specific_address_names_itself() {
        let names = ServerNames::new(&[], "127.0.0.1:8080".parse().unwrap()).unwrap();
        assert!(!names.falls_back_to_host());
        assert!(names.accepts("http://127.0.0.1:8080", None));
        assert!(names.accepts("http://localhost:8080", None));
        assert!(!names.accepts("http://127.0.0.1:8081", Some("127.0.0.1:8081")));
        assert!(!names.accepts("https://127.0.0.1:8080", None));
        let names = ServerNames::new(&[], "[::1]:9000".parse().unwrap()).unwrap();
        assert!(names.accepts("http://[::1]:9000", None));
        assert!(names.accepts("http://localhost:9000", None));
        let names = ServerNames::new(&[], "10.0.0.5:9000".parse().unwrap()).unwrap();
        assert!(names.accepts("http://10.0.0.5:9000", None));
        assert!(!names.accepts("http://localhost:9000", None));
    }

    #[test]
    fn public_urls_are_names() {
        let urls = vec!["https://Records.Example/".to_owned()];
        let names = ServerNames::new(&urls, "0.0.0.0:8080".parse().unwrap()).unwrap();
        assert!(!names.falls_back_to_host());
        assert!(names.accepts("https://records.example:443", None));
        // Configured names replace the Host fallback.
        assert!(!names.accepts("http://relay.example:80", Some("relay.example")));
        assert_eq!(names.expected(), "https://records.example:443");
        assert!(
            ServerNames::new(&["records.example".into()], "0.0.0.0:1".parse().unwrap()).is_err()
        );
    }

    #[test]
    fn an_unspecified_address_without_names_trusts_host() {
        let names = ServerNames::new(&[], "0.0.0.0:8080".parse().unwrap()).unwrap();
        assert!(names.falls_back_to_host());
        assert!(names.accepts("http://records.example:8080", Some("Records.Example:8080")));
        assert!(names.accepts("https://records.example:443", Some("records.example")));
        assert!(!names.accepts("http://records.example:8080", None));
        assert!(!names.accepts("http://other.example:8080", Some("records.example:8080")));
    }
}
