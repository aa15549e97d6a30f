//! The dependency rules between the workspace's crates
//! (`docs/architecture.md`), read from their manifests: which Sluice crate
//! may depend on which, that the test kit is only ever a dev-dependency,
//! and that only the crates that serve routes (the server and the
//! application) turn on the `openapi` feature.

use std::collections::BTreeSet;
use std::path::Path;

/// A crate's Sluice dependencies: (normal, dev), by crate name.
fn sluice_deps(dir: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let text = std::fs::read_to_string(root.join(dir).join("Cargo.toml")).expect("manifest");
    let manifest: toml::Table = toml::from_str(&text).expect("toml");
    let names = |section: &str| -> BTreeSet<String> {
        manifest
            .get(section)
            .and_then(|t| t.as_table())
            .map(|t| {
                t.keys()
                    // `sluice` is the binary's crate; the others are `sluice-*`.
                    .filter(|k| k.as_str() == "sluice" || k.starts_with("sluice-"))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    };
    (names("dependencies"), names("dev-dependencies"))
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

#[test]
fn each_crate_depends_only_on_the_layers_below_it() {
    let rules: [(&str, &[&str]); 8] = [
        ("engine", &[]),
        // The application builds on the engine and plugs into the server
        // and, through the plug-in traits, into the binary.
        (
            "jobs",
            &[
                "sluice-engine",
                "sluice-server",
                "sluice-dashboard",
                "sluice-plugin",
            ],
        ),
        // The plug-in traits: what an application hands the binary,
        // including its `sluice_server::App`.
        ("plugin", &["sluice-engine", "sluice-server"]),
        ("dashboard", &[]),
        // The server knows no application: one plugs in as a `sluice_server::App`.
        ("server", &["sluice-engine", "sluice-dashboard"]),
        ("testkit", &["sluice-engine"]),
        ("bench", &["sluice-engine", "sluice-trading"]),
        // The binary links the application (`main.rs` lists it) but names
        // it nowhere else (`the_binary_names_no_application`).
        (
            "api",
            &[
                "sluice-engine",
                "sluice-trading",
                "sluice-dashboard",
                "sluice-server",
                "sluice-plugin",
            ],
        ),
    ];
    for (dir, allowed) in rules {
        let (normal, dev) = sluice_deps(dir);
        assert_eq!(normal, set(allowed), "{dir}'s dependencies");
        let dev_allowed = set(&["sluice-testkit"]);
        assert!(
            dev.is_subset(&dev_allowed.union(&set(allowed)).cloned().collect()),
            "{dir}'s dev-dependencies: {dev:?}"
        );
    }
}

#[test]
fn only_the_crates_that_serve_routes_turn_on_the_openapi_schemas() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for dir in [
        "engine",
        "jobs",
        "dashboard",
        "server",
        "plugin",
        "testkit",
        "bench",
        "api",
    ] {
        let text = std::fs::read_to_string(root.join(dir).join("Cargo.toml")).expect("manifest");
        let manifest: toml::Table = toml::from_str(&text).expect("toml");
        let turns_on = ["dependencies", "dev-dependencies"].iter().any(|section| {
            manifest
                .get(*section)
                .and_then(|t| t.as_table())
                .is_some_and(|t| {
                    t.iter().any(|(name, spec)| {
                        name.starts_with("sluice-")
                            && spec
                                .get("features")
                                .and_then(|f| f.as_array())
                                .is_some_and(|f| f.iter().any(|x| x.as_str() == Some("openapi")))
                    })
                })
        });
        assert_eq!(
            turns_on,
            dir == "server" || dir == "jobs",
            "{dir} and the openapi feature"
        );
    }
    // The engine's schemas are optional: it builds without utoipa.
    let engine = std::fs::read_to_string(root.join("engine/Cargo.toml")).expect("manifest");
    let engine: toml::Table = toml::from_str(&engine).expect("toml");
    assert_eq!(
        engine["dependencies"]["utoipa"]["optional"].as_bool(),
        Some(true)
    );
}

/// Every `.rs` file under `dir` (relative to the workspace), with its text
/// less the comment lines (docs may name what the code must not use).
fn sources(dir: &str) -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut out = Vec::new();
    let mut stack = vec![root.join(dir)];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).expect("read");
                let code: Vec<&str> = text
                    .lines()
                    .filter(|l| !l.trim_start().starts_with("//"))
                    .collect();
                let name = path.strip_prefix(&root).expect("under root");
                out.push((name.display().to_string(), code.join("\n")));
            }
        }
    }
    assert!(!out.is_empty(), "no sources under {dir}");
    out
}

/// The config schema is a leaf of the binary: it names none of the binary's
/// other modules (it may use the engine's and the jobs crate's types).
#[test]
fn the_config_schema_names_no_other_module_of_the_binary() {
    for (file, code) in sources("api/src/config") {
        let outside: Vec<&str> = code
            .match_indices("crate::")
            .map(|(i, _)| &code[i..(i + 40).min(code.len())])
            .filter(|s| !s.starts_with("crate::config"))
            .collect();
        assert!(outside.is_empty(), "{file} names {outside:?}");
        assert!(
            !code.contains("super::super"),
            "{file} reaches out of config"
        );
    }
}

/// Inside the engine only `store/` sends Redis commands (`conn.rs` is the
/// connection they go through, `scripts.rs` only loads the Lua sources).
#[test]
fn only_the_engines_store_sends_redis_commands() {
    let sending = [
        "redis::cmd(",
        "redis::pipe(",
        "query_async(",
        "invoke_async(",
        ".arg(",
    ];
    for (file, code) in sources("engine/src") {
        if file.contains("engine/src/store/") || file.ends_with("engine/src/conn.rs") {
            continue;
        }
        // Unit tests may talk to Redis directly.
        let code = code.split("#[cfg(test)]").next().unwrap_or_default();
        for needle in sending {
            assert!(!code.contains(needle), "{file} sends a command: {needle}");
        }
    }
}

/// In the application, only its plug-in (`jobs/src/plugin/`) meets the server,
/// HTTP and the binary's plug-in traits: the handlers and the domain below
/// them know none of them.
#[test]
fn only_the_applications_plug_in_knows_the_server() {
    for (file, code) in sources("jobs/src") {
        if file.contains("jobs/src/plugin/") {
            continue;
        }
        for needle in [
            "sluice_server",
            "sluice_dashboard",
            "sluice_plugin",
            "axum::",
            "utoipa_axum",
        ] {
            assert!(!code.contains(needle), "{file} names {needle}");
        }
    }
}

/// The binary names no application: an application plugs in through the
/// plug-in traits, and only `api/src/main.rs`'s list of linked plug-ins
/// (`fn linked_plugins`) names one. Checked for the application this
/// workspace links: its crate, its name and former names (as its plug-in
/// gives them) and its queues (as literals).
#[test]
fn the_binary_names_no_application() {
    use sluice_plugin::Plugin;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let manifest: toml::Table =
        toml::from_str(&std::fs::read_to_string(root.join("jobs/Cargo.toml")).expect("manifest"))
            .expect("toml");
    let package = manifest["package"]["name"].as_str().expect("package name");
    let plugin = sluice_trading::plugin::TradingPlugin;
    let mut needles = vec![package.to_owned(), package.replace('-', "_")];
    needles.push(plugin.name().to_owned());
    needles.extend(plugin.former_names().iter().map(|n| n.to_string()));
    needles.extend(sluice_trading::queues::ALL.iter().map(|q| format!("{q:?}")));
    for (file, code) in sources("api/src") {
        let code = if file.ends_with("api/src/main.rs") {
            // The composition root's one list, up to its closing brace.
            let start = code.find("fn linked_plugins").unwrap_or(code.len());
            let end = code[start..].find("\n}").map_or(code.len(), |e| start + e);
            format!("{}{}", &code[..start], &code[end..])
        } else {
            code
        };
        let lower = code.to_lowercase();
        for needle in &needles {
            assert!(
                !lower.contains(&needle.to_lowercase()),
                "{file} names the application: {needle}"
            );
        }
    }
}
