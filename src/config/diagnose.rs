//! Config errors as an operator reads them: one line each, naming the file and line (or the
//! environment variable) and the key, every one at once, with a suggestion for a misspelt key.

use std::path::Path;

use figment::{Figment, Source, error::Kind, providers::Serialized, value::Value};

use super::Config;

/// A TOML file that does not parse: `file:line:column: what`.
pub(super) fn syntax(path: &Path) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    match toml::from_str::<toml::Table>(&text) {
        Ok(_) => Ok(()),
        Err(e) => {
            let at = e.span().map_or(0, |s| s.start).min(text.len());
            let before = text.get(..at).unwrap_or_default();
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            Err(format!("{}:{line}:{column}: {}", path.display(), e.message().trim()))
        }
    }
}

/// The config `fig` holds, or every problem in it, a line each. Each key at fault is taken out
/// and the rest tried again, so one mistake does not hide the next; then the checks types cannot
/// make run on what is left.
pub(super) fn extract(fig: &Figment) -> Result<Config, String> {
    let mut data: Value = fig.extract().map_err(|e| e.to_string())?;
    let mut problems = Vec::new();
    let mut taken_keys = Vec::new();
    let mut parsed = None;
    for _ in 0..100 {
        let Value::Dict(_, dict) = &data else { break };
        match Figment::from(Serialized::defaults(dict)).extract::<Config>() {
            Ok(cfg) => {
                parsed = Some(cfg);
                break;
            }
            Err(errors) => {
                let mut taken = false;
                for e in errors {
                    problems.push(describe(fig, &data, &e.path, &e.kind));
                    if take_out(&mut data, &e.path) {
                        taken = true;
                        taken_keys.push(e.path.join("."));
                    }
                }
                if !taken {
                    break;
                }
            }
        }
    }
    if let Some(cfg) = &parsed {
        for (key, why) in cfg.problems() {
            // A key already reported now holds its default: what follows from that is noise.
            let path: Vec<String> = key.replace('[', ".").replace(']', "").split('.').map(str::to_owned).collect();
            let dotted = path.join(".");
            // Keys the message names, whole (`passwords.max` is not `passwords.max_length`).
            let named: Vec<&str> = why
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
                .map(|w| w.trim_end_matches('.'))
                .collect();
            let follows = |t: &String| {
                dotted == *t
                    || dotted.starts_with(&format!("{t}."))
                    || t.starts_with(&format!("{dotted}."))
                    || named.contains(&t.as_str())
            };
            if taken_keys.iter().any(follows) {
                continue;
            }
            let said = format!("config key `{key}`: {why}");
            problems.push(match source(fig, &path) {
                Some(src) => format!("{src}: {said}"),
                None => said,
            });
        }
    }
    match parsed {
        Some(cfg) if problems.is_empty() => Ok(cfg),
        _ => {
            let mut seen = std::collections::HashSet::new();
            problems.retain(|p| seen.insert(p.clone()));
            Err(problems.join("\n"))
        }
    }
}

fn describe(fig: &Figment, data: &Value, path: &[String], kind: &Kind) -> String {
    let key = path.join(".");
    let parent =
        path.split_last().map(|(_, p)| p.iter().map(|s| format!("{s}.")).collect::<String>()).unwrap_or_default();
    let what = match kind {
        Kind::UnknownField(found, expected) => {
            let best = expected
                .iter()
                .map(|k| (strsim::jaro_winkler(found, k), *k))
                .filter(|(score, _)| *score > 0.8)
                .max_by(|a, b| a.0.total_cmp(&b.0));
            let said = match best {
                Some((_, k)) => format!("unknown config key `{key}`; did you mean `{parent}{k}`?"),
                None => format!("unknown config key `{key}`; known keys here: {}", expected.join(", ")),
            };
            return match source(fig, path) {
                Some(src) => format!("{src}: {said}"),
                None => said,
            };
        }
        Kind::Message(m) if m.contains("invalid socket address syntax") => {
            let given = value_at(data, path).and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
            format!(
                "`{given}` is not an IP address and port: write e.g. 127.0.0.1:8080, 0.0.0.0:8080 or [::1]:8080 \
                 (host names such as localhost are not resolved)"
            )
        }
        // The value itself may be a secret (a numeric token, a database URL): only its type.
        Kind::InvalidType(actual, expected) | Kind::InvalidValue(actual, expected) => {
            format!("expected {expected}, found {}", kind_of(actual))
        }
        other => other.to_string(),
    };
    match source(fig, path) {
        Some(src) => format!("{src}: config key `{key}`: {what}"),
        None => format!("config key `{key}`: {what}"),
    }
}

fn kind_of(actual: &figment::error::Actual) -> &'static str {
    use figment::error::Actual as A;
    match actual {
        A::Bool(_) => "a boolean",
        A::Unsigned(_) | A::Signed(_) => "an integer",
        A::Float(_) => "a floating-point number",
        A::Char(_) | A::Str(_) => "a string",
        A::Bytes(_) => "bytes",
        A::Unit | A::Option => "nothing",
        A::Seq => "a list",
        A::Map => "a table",
        _ => "another type",
    }
}

/// Where a key was set: `file:line`, or the environment variable.
fn source(fig: &Figment, path: &[String]) -> Option<String> {
    let meta = fig.find_metadata(&path.join("."))?;
    match &meta.source {
        Some(Source::File(file)) => Some(match line_of(file, path) {
            Some(line) => format!("{}:{line}", file.display()),
            None => file.display().to_string(),
        }),
        _ if meta.name.contains("environment") => {
            let name: Vec<String> = path.iter().map(|k| k.to_uppercase()).collect();
            Some(format!("environment variable AUTHD_{}", name.join("__")))
        }
        _ => None,
    }
}

/// The line that sets `path` in a TOML file, as far as plain `[table]` and `key = …` lines
/// show it.
fn line_of(file: &Path, path: &[String]) -> Option<usize> {
    let text = std::fs::read_to_string(file).ok()?;
    let mut table: Vec<String> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        let bare = line.split_once(" #").map_or(line, |(l, _)| l).trim_end();
        if let Some(header) = bare.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let header = header.trim_matches(['[', ']']);
            table = header.split('.').map(|s| s.trim().trim_matches('"').to_owned()).collect();
            continue;
        }
        let Some((k, _)) = line.split_once('=') else { continue };
        if line.starts_with('#') {
            continue;
        }
        let mut full = table.clone();
        full.extend(k.split('.').map(|s| s.trim().trim_matches('"').to_owned()));
        if full == path || (full.len() < path.len() && path.starts_with(&full)) {
            return Some(n + 1);
        }
    }
    None
}

/// One step down: a key of a table, or an index of a list (`forward_auth.rules.0`).
fn child<'a>(v: &'a Value, k: &str) -> Option<&'a Value> {
    match v {
        Value::Dict(_, d) => d.get(k),
        Value::Array(_, a) => a.get(k.parse::<usize>().ok()?),
        _ => None,
    }
}

fn child_mut<'a>(v: &'a mut Value, k: &str) -> Option<&'a mut Value> {
    match v {
        Value::Dict(_, d) => d.get_mut(k),
        Value::Array(_, a) => a.get_mut(k.parse::<usize>().ok()?),
        _ => None,
    }
}

fn value_at<'a>(data: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(data, |v, k| child(v, k))
}

/// Takes the key at `path` out of `data` (a list item it names goes whole); whether there was one.
fn take_out(data: &mut Value, path: &[String]) -> bool {
    let Some((last, parents)) = path.split_last() else { return false };
    let Some(parent) = parents.iter().try_fold(data, |v, k| child_mut(v, k)) else { return false };
    match parent {
        Value::Dict(_, d) => d.remove(last).is_some(),
        Value::Array(_, a) => match last.parse::<usize>() {
            Ok(i) if i < a.len() => {
                a.remove(i);
                true
            }
            _ => false,
        },
        _ => false,
    }
}
