//! A headless Chromium driven through chromedriver: the driver process (killed with its
//! browsers when the guard drops), one [`Page`] per browser session, and the waits the test
//! needs, each failing with the page's text and its console.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};
use tempfile::TempDir;

/// How long a wait polls before it fails the test.
pub const WAIT: Duration = Duration::from_secs(15);
const POLL: Duration = Duration::from_millis(100);

/// `$<variable>`, else `name` on `$PATH` (Debian's packages `chromium` and `chromium-driver`,
/// which `cargo xtask deps` installs, put both in /usr/bin).
fn program(variable: &str, name: &str) -> PathBuf {
    if let Some(path) = std::env::var_os(variable) {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "${variable} = {}: no such file",
            path.display()
        );
        return path;
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "{name} is not on $PATH (or set ${variable}): run `cargo xtask deps`, which \
                 installs the Debian packages chromium and chromium-driver"
            )
        })
}

/// chromedriver on a free loopback port, in its own process group so that dropping the
/// guard also ends every Chromium it started, even when the test panicked before closing
/// its sessions.
pub struct Chromedriver {
    child: Child,
    pub url: String,
    http: reqwest::Client,
}

impl Chromedriver {
    pub async fn start() -> Chromedriver {
        use std::os::unix::process::CommandExt;

        let binary = program("CHROMEDRIVER", "chromedriver");
        let port = flash_tests::free_port().expect("a free port");
        let child = Command::new(&binary)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let driver = Chromedriver {
            child,
            url: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::builder()
                .no_proxy()
                .build()
                .expect("an HTTP client"),
        };
        let started = Instant::now();
        loop {
            let ready = match driver
                .http
                .get(format!("{}/status", driver.url))
                .send()
                .await
            {
                Ok(response) => response
                    .json::<Value>()
                    .await
                    .is_ok_and(|status| status["value"]["ready"] == true),
                Err(_) => false,
            };
            if ready {
                return driver;
            }
            assert!(
                started.elapsed() < WAIT,
                "chromedriver did not become ready on port {port} within {WAIT:?}"
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// A new browser session with a fresh profile. The flags keep a root, headless Chromium
    /// from hanging on this machine's closed network (background lookups, component
    /// updates, sync) and from needing a sandbox, a GPU or a large /dev/shm.
    pub async fn page(&self, name: &'static str) -> Page {
        let profile = tempfile::Builder::new()
            .prefix("flash-chromium-")
            .tempdir()
            .expect("a profile directory");
        let binary = program("CHROMIUM", "chromium");
        let capabilities = json!({
            "browserName": "chrome",
            "goog:loggingPrefs": { "browser": "ALL" },
            "goog:chromeOptions": {
                "binary": binary,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--disable-quic",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--window-size=1280,900",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            },
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!("the capabilities are an object")
        };
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&self.url)
            .await
            .unwrap_or_else(|e| panic!("chromedriver cannot open a browser for {name}: {e}"));
        let session = client
            .session_id()
            .await
            .expect("the session id")
            .expect("a session");
        Page {
            name,
            client,
            log_url: format!("{}/session/{session}/se/log", self.url),
            http: self.http.clone(),
            console: Vec::new(),
            _profile: profile,
        }
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        // The negative id names the process group: chromedriver and the browsers it started.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One browser session: a tab, its profile, and every console entry read so far.
pub struct Page {
    pub name: &'static str,
    pub client: Client,
    log_url: String,
    http: reqwest::Client,
    console: Vec<Value>,
    _profile: TempDir,
}

impl Page {
    pub async fn goto(&self, url: &str) {
        self.client
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("{}: cannot open {url}: {e}", self.name));
    }

    /// Runs `body` (a function body: it must `return`) in the page.
    pub async fn js(&self, body: &str) -> Value {
        self.client
            .execute(body, Vec::new())
            .await
            .unwrap_or_else(|e| panic!("{}: script failed: {e}\n{body}", self.name))
    }

    /// The text of the first element `selector` matches, or None.
    pub async fn text(&self, selector: &str) -> Option<String> {
        let value = self
            .client
            .execute(
                "const node = document.querySelector(arguments[0]); \
                 return node ? node.textContent.trim() : null;",
                vec![json!(selector)],
            )
            .await
            .unwrap_or_else(|e| panic!("{}: cannot read {selector}: {e}", self.name));
        value.as_str().map(str::to_owned)
    }

    /// Polls `condition` (a JS expression) until it is truthy and returns its value; fails
    /// after [`WAIT`] with what was awaited, the page's text and its console.
    pub async fn wait_for(&mut self, what: &str, condition: &str) -> Value {
        let script = format!("return ({condition});");
        let started = Instant::now();
        loop {
            let value = self.js(&script).await;
            let truthy = match &value {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::Number(n) => n.as_f64() != Some(0.0),
                Value::String(s) => !s.is_empty(),
                Value::Array(_) | Value::Object(_) => true,
            };
            if truthy {
                return value;
            }
            if started.elapsed() > WAIT {
                let report = self.report().await;
                panic!(
                    "{}: waited {WAIT:?} for {what} (`{condition}`)\n{report}",
                    self.name
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until `selector`'s text equals `expected`.
    pub async fn wait_for_text(&mut self, selector: &str, expected: &str) {
        let condition = format!(
            "(document.querySelector({sel}) || {{}}).textContent?.trim() === {want}",
            sel = json!(selector),
            want = json!(expected),
        );
        self.wait_for(&format!("{selector} to read {expected:?}"), &condition)
            .await;
    }

    /// A WebDriver click: a real pointer event on the element's centre, refused when
    /// something covers it.
    pub async fn click(&mut self, selector: &str) {
        let found = self.client.find(Locator::Css(selector)).await;
        let outcome = match found {
            Ok(element) => element.click().await.map(|_| ()),
            Err(e) => Err(e),
        };
        if let Err(e) = outcome {
            let report = self.report().await;
            panic!("{}: cannot click {selector}: {e}\n{report}", self.name);
        }
    }

    pub async fn type_into(&mut self, selector: &str, text: &str) {
        let found = self.client.find(Locator::Css(selector)).await;
        let outcome = match found {
            Ok(element) => element.send_keys(text).await,
            Err(e) => Err(e),
        };
        if let Err(e) = outcome {
            let report = self.report().await;
            panic!("{}: cannot type into {selector}: {e}\n{report}", self.name);
        }
    }

    /// Signs in through the demo login's form (opened from the header's Sign in button
    /// unless an add opened it already) and waits for the shop and its products.
    pub async fn sign_in(&mut self, username: &str) {
        self.wait_for(
            "the Sign in button or the sign-in panel",
            "!document.getElementById('signin-open').hidden \
             || !document.getElementById('signin').hidden",
        )
        .await;
        if self
            .js("return document.getElementById('signin').hidden;")
            .await
            == serde_json::Value::Bool(true)
        {
            self.click("#signin-open").await;
        }
        self.wait_for(
            "the demo login's form",
            "!document.getElementById('signin').hidden \
             && !document.getElementById('signin-demo').hidden",
        )
        .await;
        self.type_into("#signin-username", username).await;
        self.click("#signin-submit").await;
        self.wait_for(
            "the shop to replace the sign-in form",
            "document.getElementById('signin').hidden \
             && !document.getElementById('user-box').hidden",
        )
        .await;
        self.wait_for(
            "the product grid",
            "document.querySelectorAll('#grid .card[data-product-id]').length === 3",
        )
        .await;
        let shown = self.text("#user-name").await;
        assert_eq!(
            shown.as_deref(),
            Some(username),
            "{}: the header does not name the signed-in user (the session reply is \
             {{\"user\": {{\"id\", \"username\"}}}}: does app.js read user.username?)",
            self.name
        );
    }

    /// Saves a PNG of the viewport and returns its path.
    pub async fn screenshot(&self, path: &Path) -> PathBuf {
        let png = self
            .client
            .screenshot()
            .await
            .unwrap_or_else(|e| panic!("{}: no screenshot: {e}", self.name));
        std::fs::write(path, png)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        path.to_owned()
    }

    /// Reads the browser's console (chromedriver hands each entry out once) and keeps it.
    pub async fn read_console(&mut self) -> &[Value] {
        if let Err(e) = self.fetch_console().await {
            panic!("{}: cannot read the browser log: {e}", self.name);
        }
        &self.console
    }

    async fn fetch_console(&mut self) -> Result<(), String> {
        let reply = self
            .http
            .post(&self.log_url)
            .json(&json!({ "type": "browser" }))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let body: Value = reply.json().await.map_err(|e| e.to_string())?;
        let entries = body["value"]
            .as_array()
            .ok_or_else(|| format!("not a list: {body}"))?;
        self.console.extend(entries.iter().cloned());
        Ok(())
    }

    /// Console errors other than the browser's line for a non-2xx response (the app's
    /// expected 401 before sign-in): script exceptions, console.error, failed WebSockets.
    /// Fails the test if the page logged an error to its console.
    pub async fn assert_no_errors(&mut self) {
        let errors = self.errors().await;
        assert!(
            errors.is_empty(),
            "{}: errors in the browser console:\n{}",
            self.name,
            errors.join("\n")
        );
    }

    pub async fn errors(&mut self) -> Vec<String> {
        self.read_console()
            .await
            .iter()
            .filter(|entry| entry["level"] == "SEVERE")
            .filter_map(|entry| entry["message"].as_str())
            .filter(|message| {
                !message.contains("Failed to load resource: the server responded with a status of")
            })
            .map(str::to_owned)
            .collect()
    }

    /// The page's visible text and console, for a failure message.
    pub async fn report(&mut self) -> String {
        let text = self
            .client
            .execute(
                "return document.body ? document.body.innerText : '';",
                Vec::new(),
            )
            .await
            .map_or_else(
                |e| format!("<unreadable: {e}>"),
                |v| v.as_str().unwrap_or_default().to_owned(),
            );
        let text: String = text.chars().take(3000).collect();
        // A failure message must survive a dead browser: no panic while writing it.
        let unread = self
            .fetch_console()
            .await
            .err()
            .map(|e| format!("\n  <the rest is unreadable: {e}>"))
            .unwrap_or_default();
        let console: Vec<String> = self
            .console
            .iter()
            .map(|entry| format!("  {} {}", entry["level"], entry["message"]))
            .collect();
        format!(
            "--- {} page text ---\n{text}\n--- {} console ---\n{}{unread}",
            self.name,
            self.name,
            console.join("\n")
        )
    }

    pub async fn close(self) {
        let _ = self.client.close().await;
    }
}
