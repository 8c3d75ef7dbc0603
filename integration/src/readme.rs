//! Reading the README the way a newcomer does: a section, its fenced code
//! blocks, and the commands in them.

/// A fenced code block: its info string (`sh`, `yaml`, or empty) and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeBlock {
    pub lang: String,
    pub body: String,
}

/// `<workspace>/README.md`.
pub fn readme() -> String {
    let path = crate::workspace_root().join("README.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// The text under the heading `title` (any level), up to the next heading of
/// the same or a higher level; `None` when there is no such heading.
/// Headings inside fenced code blocks are ignored.
pub fn section(markdown: &str, title: &str) -> Option<String> {
    let mut level = None;
    let mut out = String::new();
    let mut in_fence = false;
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
        }
        let heading = (!in_fence).then(|| heading(line)).flatten();
        match (level, heading) {
            (None, Some((l, t))) if t == title => level = Some(l),
            (None, _) => {}
            (Some(l), Some((hl, _))) if hl <= l => break,
            (Some(_), _) => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    level.map(|_| out)
}

fn heading(line: &str) -> Option<(usize, &str)> {
    let level = line.bytes().take_while(|b| *b == b'#').count();
    if level == 0 || level > 6 {
        return None;
    }
    let rest = &line[level..];
    rest.starts_with(' ').then(|| (level, rest.trim()))
}

/// The fenced (```) code blocks of `markdown`, in order.
pub fn code_blocks(markdown: &str) -> Vec<CodeBlock> {
    let mut blocks = Vec::new();
    let mut current: Option<CodeBlock> = None;
    for line in markdown.lines() {
        let t = line.trim_start();
        match current.as_mut() {
            None => {
                if let Some(info) = t.strip_prefix("```") {
                    current = Some(CodeBlock {
                        lang: info.trim().to_string(),
                        body: String::new(),
                    });
                }
            }
            Some(b) => {
                if t.starts_with("```") {
                    blocks.extend(current.take());
                } else {
                    b.body.push_str(line);
                    b.body.push('\n');
                }
            }
        }
    }
    blocks
}

/// The commands of a shell block: backslash continuations joined, blank
/// lines and `#` comment lines dropped.
pub fn commands(body: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for line in body.lines() {
        let t = line.trim();
        if cur.is_empty() && (t.is_empty() || t.starts_with('#')) {
            continue;
        }
        if let Some(head) = t.strip_suffix('\\') {
            cur.push_str(head.trim_end());
            cur.push(' ');
            continue;
        }
        cur.push_str(t);
        out.push(std::mem::take(&mut cur));
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_string());
    }
    out
}

/// Split a command line into words as a POSIX shell would for simple
/// commands: whitespace separates, single quotes are literal, double quotes
/// group (with `\"` and `\\` escapes), a backslash outside quotes escapes
/// the next character. No expansions.
pub fn shell_words(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\n' => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(ch) => cur.push(ch),
                        None => return Err(format!("unterminated ' in: {line}")),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(ch @ ('"' | '\\' | '$' | '`')) => cur.push(ch),
                            Some(ch) => {
                                cur.push('\\');
                                cur.push(ch);
                            }
                            None => return Err(format!("unterminated \" in: {line}")),
                        },
                        Some(ch) => cur.push(ch),
                        None => return Err(format!("unterminated \" in: {line}")),
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(ch) = chars.next() {
                    cur.push(ch);
                }
            }
            _ => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MD: &str = "# T\n\n## A\ntext\n```sh\n# comment\nfoo --x 1 \\\n  --y 2\n\nbar 'a b' \"c \\\"d\\\"\"\n```\n### A.1\nmore\n```yaml\nk: v\n## not a heading\n```\n## B\nother\n";

    #[test]
    fn sections_end_at_the_next_heading_of_their_level() {
        let a = section(MD, "A").unwrap();
        assert!(a.contains("text") && a.contains("### A.1") && a.contains("k: v"));
        assert!(!a.contains("other"));
        assert_eq!(section(MD, "A.1").unwrap().lines().next(), Some("more"));
        assert!(section(MD, "C").is_none());
    }

    #[test]
    fn blocks_commands_and_words() {
        let blocks = code_blocks(&section(MD, "A").unwrap());
        assert_eq!(blocks.len(), 2);
        assert_eq!(blocks[0].lang, "sh");
        assert_eq!(blocks[1].body, "k: v\n## not a heading\n");
        let cmds = commands(&blocks[0].body);
        assert_eq!(cmds, ["foo --x 1 --y 2", "bar 'a b' \"c \\\"d\\\"\""]);
        assert_eq!(shell_words(&cmds[1]).unwrap(), ["bar", "a b", "c \"d\""]);
        assert_eq!(shell_words("a  b\\ c 'x''y'").unwrap(), ["a", "b c", "xy"]);
        assert!(shell_words("a 'b").is_err());
    }
}
