//! The documentation keeps up with the code: every command of the CLI (as `authd user add`) and
//! every path of the OpenAPI document is named in README.md or in docs/*.md.

use std::path::Path;

use clap::CommandFactory as _;

/// README.md and every docs/*.md, one after the other.
fn docs_text() -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![root.join("README.md")];
    let mut pages: Vec<_> = std::fs::read_dir(root.join("docs"))
        .expect("docs/ exists")
        .map(|e| e.expect("docs/ is readable").path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    pages.sort();
    files.extend(pages);
    files
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap_or_else(|e| panic!("{}: {e}", f.display())))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Whether `name` occurs in `text` on its own, not as the start or end of a longer name: the
/// characters on either side must not be `part`s of a name.
fn names(text: &str, name: &str, part: impl Fn(char) -> bool) -> bool {
    text.match_indices(name).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + name.len()..].chars().next();
        !before.is_some_and(&part) && !after.is_some_and(&part)
    })
}

/// Every subcommand below `cmd`, nested ones too, as typed: `authd user mfa reset`.
fn commands(cmd: &clap::Command, prefix: &str, out: &mut Vec<String>) {
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        let name = format!("{prefix} {}", sub.get_name());
        commands(sub, &name, out);
        out.push(name);
    }
}

fn command_part(c: char) -> bool {
    c.is_alphanumeric() || c == '-' || c == '_'
}

fn path_part(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '/' | '{' | '}' | '-' | '_')
}

#[test]
fn every_command_is_named_in_the_docs() {
    let mut all = Vec::new();
    commands(&authd::cli::Cli::command(), "authd", &mut all);
    assert!(
        all.iter().any(|c| c == "authd user mfa reset") && all.iter().any(|c| c == "authd serve"),
        "the command tree was not walked down: {all:?}"
    );
    let text = docs_text();
    let missing: Vec<&String> = all.iter().filter(|c| !names(&text, c, command_part)).collect();
    assert!(missing.is_empty(), "commands that README.md and docs/*.md never name: {missing:?}");
}

#[test]
fn every_path_of_the_openapi_document_is_named_in_the_docs() {
    let document = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/authd.json")).unwrap();
    let spec: serde_json::Value = serde_json::from_str(&document).unwrap();
    let paths: Vec<&String> = spec["paths"].as_object().expect("the document has paths").keys().collect();
    assert!(paths.len() > 40, "too few paths: {paths:?}");
    let text = docs_text();
    let missing: Vec<&&String> = paths.iter().filter(|p| !names(&text, p, path_part)).collect();
    assert!(missing.is_empty(), "OpenAPI paths that README.md and docs/*.md never name: {missing:?}");
}

#[test]
fn a_name_counts_only_on_its_own() {
    let text = "see `/v1/me/events` and `authd user set-role`, or /v1/token/introspect.";
    assert!(names(text, "/v1/me/events", path_part));
    assert!(names(text, "/v1/token/introspect", path_part), "a full stop ends a path");
    assert!(!names(text, "/v1/me", path_part), "a longer path does not name its prefix");
    assert!(!names(text, "/v1/token", path_part));
    assert!(!names(text, "authd user set", command_part), "nor a longer command its prefix word");
    assert!(names(text, "authd user", command_part), "a subcommand names its parent");
}
