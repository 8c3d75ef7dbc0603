//! A small parser for the Prometheus text format served on `/metrics`.

use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

#[derive(Debug, Clone, Default)]
pub struct Metrics {
    pub samples: Vec<Sample>,
    pub text: String,
}

impl Metrics {
    pub fn parse(text: &str) -> Metrics {
        let samples = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .filter_map(parse_line)
            .collect();
        Metrics {
            samples,
            text: text.to_string(),
        }
    }

    /// Every sample of `name` whose labels include all of `labels`.
    pub fn select<'a>(
        &'a self,
        name: &'a str,
        labels: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
    }

    /// The sum of every sample of `name` matching `labels` (0 if none).
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.select(name, labels).map(|s| s.value).sum()
    }

    /// Does any sample of this name exist?
    pub fn has(&self, name: &str) -> bool {
        self.samples.iter().any(|s| s.name == name)
    }
}

fn parse_line(line: &str) -> Option<Sample> {
    let (name, labels, rest) = match line.find('{') {
        Some(b) if line[..b].find(' ').is_none() => {
            let (labels, after) = parse_labels(&line[b + 1..])?;
            (line[..b].to_string(), labels, after)
        }
        _ => {
            let (n, r) = line.split_once(char::is_whitespace)?;
            (n.to_string(), BTreeMap::new(), r)
        }
    };
    let value_str = rest.split_whitespace().next()?;
    let value = match value_str {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    Some(Sample {
        name,
        labels,
        value,
    })
}

/// Parse `k="v",k2="v2"}` and return the labels and what follows the `}`.
fn parse_labels(s: &str) -> Option<(BTreeMap<String, String>, &str)> {
    let mut labels = BTreeMap::new();
    let bytes = s.as_bytes();
    let mut i = 0;
    loop {
        while i < bytes.len() && (bytes[i] == b',' || bytes[i] == b' ') {
            i += 1;
        }
        if i >= bytes.len() {
            return None;
        }
        if bytes[i] == b'}' {
            return Some((labels, &s[i + 1..]));
        }
        let eq = s[i..].find('=')? + i;
        let key = s[i..eq].trim().to_string();
        i = eq + 1;
        if bytes.get(i) != Some(&b'"') {
            return None;
        }
        i += 1;
        let mut val = String::new();
        loop {
            let c = *bytes.get(i)?;
            match c {
                b'\\' => {
                    let n = *bytes.get(i + 1)?;
                    val.push(match n {
                        b'n' => '\n',
                        other => other as char,
                    });
                    i += 2;
                }
                b'"' => {
                    i += 1;
                    break;
                }
                _ => {
                    // Copy one UTF-8 character.
                    let ch = s[i..].chars().next()?;
                    val.push(ch);
                    i += ch.len_utf8();
                }
            }
        }
        labels.insert(key, val);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_sums() {
        let m = Metrics::parse(
            "# HELP x y\n# TYPE tlsgate_requests_total counter\n\
             tlsgate_requests_total{server=\"a\",host=\"h\",code=\"200\"} 3\n\
             tlsgate_requests_total{server=\"b\",host=\"h\",code=\"200\"} 2\n\
             tlsgate_requests_total{server=\"b\",host=\"h\",code=\"421\"} 1\n\
             tlsgate_x{q=\"a \\\"b\\\", c}\"} 1.5e0\n\
             up 1\n",
        );
        assert_eq!(m.sum("tlsgate_requests_total", &[("code", "200")]), 5.0);
        assert_eq!(
            m.sum("tlsgate_requests_total", &[("server", "b"), ("host", "h")]),
            3.0
        );
        assert_eq!(m.sum("tlsgate_x", &[("q", "a \"b\", c}")]), 1.5);
        assert_eq!(m.sum("up", &[]), 1.0);
        assert_eq!(m.sum("nope", &[]), 0.0);
    }
}
