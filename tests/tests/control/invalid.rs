//! Twenty invalid versions of table A, each with the text its rejection must contain.

use super::mesh::Mesh;

/// A config that is not valid, what it breaks, and text the error must contain (its TOML path, or for a syntax
/// error the file's line).
pub struct Invalid {
    pub what: &'static str,
    pub config: String,
    pub expect: String,
    /// A second problem in the same file, which must be reported too.
    pub also: Option<&'static str>,
}

/// Twenty different invalid versions of table A.
pub fn invalid_configs(mesh: &Mesh) -> Vec<Invalid> {
    let good = mesh.config("A");
    let edit = |what: &'static str, from: &str, to: &str, expect: &str| {
        assert!(good.contains(from), "{what}: {from:?} not in the config");
        Invalid {
            what,
            config: good.replacen(from, to, 1),
            expect: expect.to_string(),
            also: None,
        }
    };
    let append = |what: &'static str, extra: &str, expect: &str| Invalid {
        what,
        config: format!("{good}\n{extra}"),
        expect: expect.to_string(),
        also: None,
    };
    let a = mesh.a.addr.to_string();
    let syntax_line = good.lines().count() + 2;
    vec![
        edit(
            "unknown cluster",
            "cluster = \"a\"",
            "cluster = \"nope\"",
            "listener[0].route[0].cluster",
        ),
        edit(
            "bad endpoint address",
            &format!("[\"{a}\"]"),
            "[\"127.0.0.1:notaport\"]",
            "cluster[0].endpoints[0]",
        ),
        edit(
            "unknown key",
            "protocol = \"http\"",
            "protocol = \"http\"\nspeed = \"fast\"",
            "listener[0].speed",
        ),
        append(
            "syntax error",
            "oops = \"unterminated",
            &format!("mesh.toml:{syntax_line}:"),
        ),
        append(
            "duplicate listener name",
            "[[listener]]\nname = \"edge\"\nbind = \"127.0.0.1:1\"\nprotocol = \"http\"\n",
            "listener[1].name",
        ),
        edit(
            "bad regex",
            "path_prefix = \"/\"",
            "path_regex = \"([a-z\"",
            "listener[0].route[0].path_regex",
        ),
        append(
            "duplicate listener bind",
            &format!(
                "[[listener]]\nname = \"other\"\nbind = \"127.0.0.1:{}\"\nprotocol = \"http\"\n",
                mesh.port
            ),
            "listener[1].bind",
        ),
        edit(
            "unknown protocol",
            "protocol = \"http\"",
            "protocol = \"udp\"",
            "listener[0].protocol",
        ),
        edit(
            "bad duration",
            "protocol = \"http\"",
            "protocol = \"http\"\nidle_timeout = \"10 parsecs\"",
            "listener[0].idle_timeout",
        ),
        edit(
            "zero workers",
            "workers = 2",
            "workers = 0",
            "runtime.workers",
        ),
        edit(
            "unknown balance",
            "name = \"b\"",
            "name = \"b\"\nbalance = \"random\"",
            "cluster[1].balance",
        ),
        edit(
            "no endpoints",
            &format!("endpoints = [\"{}\"]", mesh.b.addr),
            "endpoints = []",
            "cluster[1].endpoints",
        ),
        append(
            "duplicate cluster",
            "[[cluster]]\nname = \"a\"\nendpoints = [\"127.0.0.1:9\"]\n",
            "cluster[2].name",
        ),
        edit(
            "cluster and direct in one route",
            "cluster = \"a\"",
            "cluster = \"a\"\ndirect = { status = 200 }",
            "listener[0].route[0]",
        ),
        edit(
            "editing a framing header",
            "\"x-table\" = \"A\"",
            "\"content-length\" = \"5\"",
            "listener[0].route[0].response_headers",
        ),
        edit(
            "bad size",
            "protocol = \"http\"",
            "protocol = \"http\"\nmax_body = \"ten\"",
            "listener[0].max_body",
        ),
        edit(
            "zero split weight",
            "cluster = \"a\"",
            "split = [{ cluster = \"a\", weight = 0 }]",
            "listener[0].route[0].split[0]",
        ),
        edit(
            "wrong type",
            "workers = 2",
            "workers = \"two\"",
            "runtime.workers",
        ),
        Invalid {
            what: "two problems at once",
            config: good
                .replacen("cluster = \"a\"", "cluster = \"nope\"", 1)
                .replacen(&format!("[\"{a}\"]"), "[\"localhost:80\"]", 1),
            expect: "listener[0].route[0].cluster".to_string(),
            also: Some("cluster[0].endpoints[0]"),
        },
        edit(
            "path without a slash",
            "path_prefix = \"/\"",
            "path_prefix = \"api\"",
            "listener[0].route[0].path_prefix",
        ),
    ]
}
