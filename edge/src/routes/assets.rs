//! The browser UI, compiled into the binary: no files to deploy beside it.
//!
//! The UI is native ES modules (`static/app.js` imports the rest), so every module must be
//! listed in [`ASSETS`] and served as `text/javascript`: a browser refuses a module script of
//! any other type, and an import the edge does not serve breaks the whole page. The tests
//! below walk the import graph from `index.html` to catch both.

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, header};

use crate::error::{ApiError, Body};

const INDEX: &str = include_str!("../../static/index.html");

const JAVASCRIPT: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// The browser revalidates every file on each load: an upgraded edge is picked up at once,
/// and the files are small.
const CACHE: &str = "no-cache";

/// One file under `/static/`: its URL path, its text and its `Content-Type`.
struct Asset {
    path: &'static str,
    text: &'static str,
    content_type: &'static str,
}

/// `asset!("views/cart.js", JAVASCRIPT)`: the file `edge/static/views/cart.js`, served at
/// `/static/views/cart.js`; the path is written once so the two cannot disagree.
macro_rules! asset {
    ($file:literal, $content_type:expr) => {
        Asset {
            path: concat!("/static/", $file),
            text: include_str!(concat!("../../static/", $file)),
            content_type: $content_type,
        }
    };
}

const ASSETS: &[Asset] = &[
    asset!("style.css", CSS),
    asset!("app.js", JAVASCRIPT),
    asset!("api.js", JAVASCRIPT),
    asset!("state.js", JAVASCRIPT),
    asset!("errors.js", JAVASCRIPT),
    asset!("session.js", JAVASCRIPT),
    asset!("catalog.js", JAVASCRIPT),
    asset!("cart.js", JAVASCRIPT),
    asset!("order.js", JAVASCRIPT),
    asset!("live.js", JAVASCRIPT),
    asset!("sales.js", JAVASCRIPT),
    asset!("queue.js", JAVASCRIPT),
    asset!("views/dom.js", JAVASCRIPT),
    asset!("views/toasts.js", JAVASCRIPT),
    asset!("views/session.js", JAVASCRIPT),
    asset!("views/header.js", JAVASCRIPT),
    asset!("views/sales.js", JAVASCRIPT),
    asset!("views/catalog.js", JAVASCRIPT),
    asset!("views/cart.js", JAVASCRIPT),
    asset!("views/countdown.js", JAVASCRIPT),
    asset!("views/order.js", JAVASCRIPT),
    asset!("views/queue.js", JAVASCRIPT),
];

pub fn index() -> Response<Body> {
    reply(INDEX, "text/html; charset=utf-8")
}

pub fn file(path: &str) -> Result<Response<Body>, ApiError> {
    ASSETS
        .iter()
        .find(|asset| asset.path == path)
        .map(|asset| reply(asset.text, asset.content_type))
        .ok_or_else(|| ApiError::not_found(format!("no file {path}")))
}

fn reply(text: &'static str, content_type: &'static str) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    headers.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static(CACHE),
    );
    response
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::Path;

    use super::*;

    fn header(response: &Response<Body>, name: header::HeaderName) -> &str {
        response.headers()[name].to_str().unwrap_or_default()
    }

    /// The text a served path answers with, or why it cannot be had.
    fn served(path: &str) -> Result<&'static str, String> {
        let response = file(path).map_err(|e| format!("{path}: {} {}", e.status, e.code))?;
        let asset = ASSETS.iter().find(|a| a.path == path).ok_or(path)?;
        assert_eq!(header(&response, header::CACHE_CONTROL), CACHE, "{path}");
        Ok(asset.text)
    }

    /// The specifiers of a module's static imports and re-exports (`import … from '…'`,
    /// `import '…'`, `export … from '…'`) and of its dynamic `import('…')`s.
    fn imports(module: &str) -> Vec<String> {
        let mut found = Vec::new();
        for opener in [
            "from '",
            "from \"",
            "import '",
            "import \"",
            "import('",
            "import(\"",
        ] {
            let quote = opener.chars().last().unwrap_or('\'');
            let mut rest = module;
            while let Some(at) = rest.find(opener) {
                rest = &rest[at + opener.len()..];
                let end = rest.find(quote).unwrap_or(rest.len());
                found.push(rest[..end].to_owned());
                rest = &rest[end..];
            }
        }
        found
    }

    /// A relative specifier resolved against the URL path of the module that imports it.
    fn resolve(importer: &str, specifier: &str) -> String {
        assert!(
            specifier.starts_with("./") || specifier.starts_with("../"),
            "{importer} imports {specifier:?}: only relative paths to our own files are served"
        );
        let mut parts: Vec<&str> = importer.split('/').collect();
        parts.pop(); // the importer's own file name
        for part in specifier.split('/') {
            match part {
                "." => {}
                ".." => {
                    parts.pop();
                }
                name => parts.push(name),
            }
        }
        parts.join("/")
    }

    #[test]
    fn every_module_is_served_as_javascript_and_other_files_by_their_type() {
        for asset in ASSETS {
            let response = file(asset.path).expect(asset.path);
            let content_type = header(&response, header::CONTENT_TYPE);
            let expected = match asset.path.rsplit_once('.').map(|(_, ext)| ext) {
                Some("js") => "text/javascript",
                Some("css") => "text/css",
                other => panic!("{}: no type known for {other:?}", asset.path),
            };
            assert!(
                content_type.starts_with(expected),
                "{}: {content_type}",
                asset.path
            );
            assert_eq!(header(&response, header::CACHE_CONTROL), CACHE);
        }
    }

    #[test]
    fn unknown_paths_are_404() {
        for path in [
            "/static/nope.js",
            "/static/",
            "/static/views/",
            "/static/views/../app.js",
            "/static/index.html",
            "/static/APP.JS",
        ] {
            let refused = file(path)
                .err()
                .unwrap_or_else(|| panic!("{path} was served"));
            assert_eq!(refused.status, hyper::StatusCode::NOT_FOUND, "{path}");
        }
    }

    /// From the page's module script, every import names a served file, and every served
    /// module is reached: a file missing from [`ASSETS`], or a dead one left in it, fails.
    #[test]
    fn every_import_from_the_page_names_a_served_module() {
        let entry = "<script type=\"module\" src=\"";
        let at = INDEX.find(entry).expect("index.html loads a module script") + entry.len();
        let entry = &INDEX[at..at + INDEX[at..].find('"').unwrap_or_default()];
        let mut reached = BTreeSet::new();
        let mut todo = vec![entry.to_owned()];
        while let Some(path) = todo.pop() {
            if !reached.insert(path.clone()) {
                continue;
            }
            let text = served(&path).unwrap_or_else(|e| panic!("not served: {e}"));
            for specifier in imports(text) {
                todo.push(resolve(&path, &specifier));
            }
        }
        let modules: BTreeSet<String> = ASSETS
            .iter()
            .filter(|a| a.content_type == JAVASCRIPT)
            .map(|a| a.path.to_owned())
            .collect();
        assert_eq!(reached, modules, "modules reached from {entry} vs served");
        // The walk itself must have followed imports, or it proves nothing.
        assert!(reached.len() > 10, "{reached:?}");
    }

    #[test]
    fn the_page_links_only_served_files() {
        for attribute in ["src=\"/static/", "href=\"/static/"] {
            for (at, _) in INDEX.match_indices(attribute) {
                let start = at + attribute.len() - "/static/".len();
                let end = start + INDEX[start..].find('"').unwrap_or_default();
                served(&INDEX[start..end]).unwrap_or_else(|e| panic!("index.html: {e}"));
            }
        }
    }

    /// A file dropped into `edge/static/` but not listed here would be a 404 in production.
    #[test]
    fn every_file_in_the_static_folder_is_served() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("static");
        let mut on_disk = BTreeSet::new();
        let mut dirs = vec![root.clone()];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).expect("static folder") {
                let path = entry.expect("static entry").path();
                if path.is_dir() {
                    dirs.push(path);
                } else if path.file_name().is_some_and(|n| n != "index.html") {
                    let relative = path.strip_prefix(&root).expect("under static/");
                    on_disk.insert(format!("/static/{}", relative.display()));
                }
            }
        }
        let listed: BTreeSet<String> = ASSETS.iter().map(|a| a.path.to_owned()).collect();
        assert_eq!(on_disk, listed);
    }

    #[test]
    fn the_import_scanner_finds_every_form() {
        let module = "import { a,\n  b } from './a.js';\nimport './b.js';\n\
                      export { c } from \"../c.js\";\nconst d = await import('./d.js');\n\
                      const text = 'nothing here';";
        assert_eq!(
            imports(module),
            ["./a.js", "../c.js", "./b.js", "./d.js"].map(String::from)
        );
        assert_eq!(
            resolve("/static/views/cart.js", "../state.js"),
            "/static/state.js"
        );
        assert_eq!(
            resolve("/static/app.js", "./views/dom.js"),
            "/static/views/dom.js"
        );
    }
}
