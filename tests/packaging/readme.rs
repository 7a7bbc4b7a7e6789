//! README.md's user-facing blocks, as a test reads them to follow the README
//! literally: the fenced blocks under a heading, and the shell commands in
//! them. A README that changes shape fails here naming the section, so the
//! test and the README cannot drift apart silently.

use crate::common;

/// README.md's text.
pub(crate) fn text() -> String {
    std::fs::read_to_string(common::repo_root().join("README.md")).expect("README.md readable")
}

/// The body of the section whose heading line is exactly `heading` (e.g.
/// "### Install with Helm"): up to the next heading of the same or a higher
/// level. Lines inside fenced blocks are never headings.
pub(crate) fn section<'a>(readme: &'a str, heading: &str) -> &'a str {
    let level = heading.chars().take_while(|c| *c == '#').count();
    let mut fenced = false;
    let mut start = None;
    let mut offset = 0;
    for line in readme.split_inclusive('\n') {
        let trimmed = line.trim_end();
        if trimmed.trim_start().starts_with("```") {
            fenced = !fenced;
        } else if !fenced && trimmed.starts_with('#') {
            let this = trimmed.chars().take_while(|c| *c == '#').count();
            match start {
                None if trimmed == heading => start = Some(offset + line.len()),
                Some(s) if this <= level => return &readme[s..offset],
                _ => {}
            }
        }
        offset += line.len();
    }
    let start = start.unwrap_or_else(|| {
        panic!("README.md has no section `{heading}`; the release test follows it (tests/packaging/release.rs)")
    });
    &readme[start..]
}

/// The fenced blocks of `section` tagged `lang` (```yaml, ```sh), in order,
/// their indentation (a block inside a list item) removed.
pub(crate) fn blocks(section: &str, lang: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for line in section.lines() {
        let indent = line.len() - line.trim_start().len();
        let fence = line.trim_start();
        match &mut current {
            None if fence.strip_prefix("```") == Some(lang) => {
                current = Some((indent, String::new()));
            }
            Some(_) if fence == "```" => {
                found.push(current.take().expect("open").1);
            }
            Some((indent, body)) => {
                body.push_str(line.get(*indent..).unwrap_or(line.trim_start()));
                body.push('\n');
            }
            None => {}
        }
    }
    found
}

/// The one ```lang block of the section `heading` whose text contains
/// `marker`; panics naming the section when there is none.
pub(crate) fn block(readme: &str, heading: &str, lang: &str, marker: &str) -> String {
    blocks(section(readme, heading), lang)
        .into_iter()
        .find(|b| b.contains(marker))
        .unwrap_or_else(|| {
            panic!(
                "README.md's section `{heading}` has no ```{lang} block with `{marker}`; \
                 the release test follows it (tests/packaging/release.rs)"
            )
        })
}

/// The shell commands of a block: continuation lines joined, each split
/// into words (no quoting in the README's commands but single quotes; a
/// `<placeholder>` is one word).
pub(crate) fn commands(block: &str) -> Vec<Vec<String>> {
    let joined = block.replace("\\\n", " ");
    joined
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(words)
        .collect()
}

fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut quoted = false;
    let mut placeholder = false;
    for c in line.chars() {
        match c {
            '\'' => quoted = !quoted,
            '<' | '>' if !quoted => {
                placeholder = c == '<';
                word.push(c);
            }
            c if c.is_whitespace() && !quoted && !placeholder => {
                if !word.is_empty() {
                    out.push(std::mem::take(&mut word));
                }
            }
            c => word.push(c),
        }
    }
    if !word.is_empty() {
        out.push(word);
    }
    out
}

/// The inline code spans of `section` outside fenced blocks (`helm uninstall …`).
fn inline_code(section: &str) -> Vec<String> {
    let mut fenced = false;
    let mut spans = Vec::new();
    for line in section.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        } else if !fenced {
            spans.extend(line.split('`').skip(1).step_by(2).map(str::to_owned));
        }
    }
    spans
}

/// The command starting with `prefix` (e.g. ["helm", "install"]) in the
/// section `heading`: its ```sh blocks first, then its inline code; panics
/// naming the section when there is none.
pub(crate) fn command(readme: &str, heading: &str, prefix: &[&str]) -> Vec<String> {
    let body = section(readme, heading);
    blocks(body, "sh")
        .iter()
        .flat_map(|b| commands(b))
        .chain(inline_code(body).iter().map(|c| words(c)))
        .find(|c| c.len() >= prefix.len() && c.iter().zip(prefix).all(|(w, p)| w == p))
        .unwrap_or_else(|| {
            panic!(
                "README.md's section `{heading}` has no `{}` command; \
                 the release test follows it (tests/packaging/release.rs)",
                prefix.join(" ")
            )
        })
}

/// The value after `flag` (or its long form `long`) in `command`.
pub(crate) fn flag<'a>(command: &'a [String], flags: &[&str]) -> &'a str {
    command
        .windows(2)
        .find(|w| flags.contains(&w[0].as_str()))
        .map(|w| w[1].as_str())
        .unwrap_or_else(|| panic!("the README's `{}` has no {flags:?}", command.join(" ")))
}

#[test]
fn the_readme_s_blocks_and_commands_are_found() {
    let readme = text();
    let values = block(&readme, "### Install with Helm", "yaml", "tenancy:");
    assert!(values.starts_with("operator:"), "{values}");
    let install = command(&readme, "### Install with Helm", &["helm", "install"]);
    assert!(install[3].starts_with("oci://"), "{install:?}");
    assert_eq!(flag(&install, &["-f", "--values"]), "values.yaml");
    let uninstall = command(&readme, "## Uninstall", &["helm", "uninstall"]);
    assert_eq!(flag(&uninstall, &["-n", "--namespace"]), "cmk-system");
    assert_eq!(
        words("kubectl patch x -p '{\"a\": 1}'"),
        ["kubectl", "patch", "x", "-p", "{\"a\": 1}"]
    );
    assert_eq!(
        words("helm upgrade --version <new version> -n x"),
        ["helm", "upgrade", "--version", "<new version>", "-n", "x"]
    );
}
