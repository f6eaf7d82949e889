//! A Responses request's tools, as the chat functions a provider is offered, and the way back:
//! which of the client's tools a function call the provider makes belongs to.
//!
//! - `function` tools are functions as they are;
//! - a `namespace` holds functions (and custom tools) that are offered flattened, as
//!   `{namespace}__{name}` (or `{namespace}{name}` when the namespace ends in `_`, as Codex's
//!   `mcp__server__` do), renamed further should that name be taken; a call comes back with its
//!   `name` and `namespace` apart;
//! - a `custom` (freeform) tool is a function of one string parameter, `input`; its call comes
//!   back as a `custom_tool_call` with that `input`;
//! - `local_shell` is a function taking the command as an array; its call comes back as a
//!   `local_shell_call`;
//! - hosted tools (web search and the like) run at OpenAI, not here: they are not offered.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::wire::chat_writer::Written;

/// A tool as the client declared it.
#[derive(Deserialize)]
pub struct Tool<'a> {
    #[serde(rename = "type", borrow)]
    pub kind: Cow<'a, str>,
    #[serde(borrow)]
    pub name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub description: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub parameters: Option<&'a RawValue>,
    pub strict: Option<bool>,
    /// A custom tool's input format: a grammar, or free text.
    #[serde(borrow)]
    pub format: Option<CustomFormat<'a>>,
    /// A namespace's tools.
    #[serde(borrow)]
    pub tools: Option<Vec<Tool<'a>>>,
}

#[derive(Deserialize)]
pub struct CustomFormat<'a> {
    #[serde(rename = "type", borrow)]
    pub kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub syntax: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub definition: Option<Cow<'a, str>>,
}

/// What kind of tool a function offered upstream stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Function,
    Custom,
    LocalShell,
}

/// The client's tool behind a function offered upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub kind: Kind,
    pub name: String,
    pub namespace: Option<String>,
}

/// The functions offered upstream, by the name they are offered under.
#[derive(Debug, Clone, Default)]
pub struct ToolTable {
    offered: HashMap<String, Origin>,
    /// Each client tool's own name, and the function offered for it; `None` when two tools
    /// share a name. Some models call a namespaced function by its bare name.
    bare: HashMap<String, Option<String>>,
    /// The functions written already: a tool declared twice is offered once.
    written: HashSet<String>,
}

/// The name `local_shell` is offered under.
pub const LOCAL_SHELL: &str = "local_shell";

const LOCAL_SHELL_PARAMETERS: &str = r#"{"type":"object","properties":{"command":{"type":"array","items":{"type":"string"},"description":"The command and its arguments, e.g. [\"ls\", \"-la\"]"},"workdir":{"type":"string","description":"The directory to run it in"},"timeout_ms":{"type":"integer","description":"The longest it may run, in milliseconds"}},"required":["command"]}"#;
const LOCAL_SHELL_DESCRIPTION: &str = "Runs a shell command on the user's machine and returns its output.";
const CUSTOM_PARAMETERS: &str = r#"{"type":"object","properties":{"input":{"type":"string","description":"The tool's whole input, as free text"}},"required":["input"]}"#;

/// The function name a namespaced tool is offered under, before any renaming.
pub fn joined(namespace: &str, name: &str) -> String {
    match namespace.ends_with('_') {
        true => format!("{namespace}{name}"),
        false => format!("{namespace}__{name}"),
    }
}

impl ToolTable {
    /// Offers `tools` (a request's, or more of them later in its input) as functions, written
    /// into `functions`. Names the client gave at the top level are kept; a namespaced name
    /// that would be taken is renamed.
    pub fn offer(&mut self, tools: &[Tool], functions: &mut Written) {
        for tool in tools {
            if let ("function" | "custom", Some(name)) = (tool.kind.as_ref(), &tool.name) {
                self.offered.entry(name.to_string()).or_insert_with(|| Origin {
                    kind: if tool.kind == "custom" { Kind::Custom } else { Kind::Function },
                    name: name.to_string(),
                    namespace: None,
                });
            }
        }
        for tool in tools {
            self.offer_one(tool, None, functions);
        }
    }

    fn offer_one(&mut self, tool: &Tool, namespace: Option<&str>, functions: &mut Written) {
        let name = tool.name.as_deref().unwrap_or_default();
        let description = tool.description.as_deref();
        match (tool.kind.as_ref(), namespace) {
            ("namespace", None) => {
                for member in tool.tools.iter().flatten() {
                    self.offer_one(member, Some(name), functions);
                }
            }
            ("function", _) if !name.is_empty() => {
                if let Some(offered) = self.name(Kind::Function, name, namespace) {
                    let parameters = tool.parameters.map_or(r#"{"type":"object","properties":{}}"#, RawValue::get);
                    functions.function(&offered, description, parameters, tool.strict);
                }
            }
            ("custom", _) if !name.is_empty() => {
                if let Some(offered) = self.name(Kind::Custom, name, namespace) {
                    functions.function(&offered, Some(&custom_description(tool)), CUSTOM_PARAMETERS, None);
                }
            }
            ("local_shell", None) => {
                if let Some(offered) = self.name(Kind::LocalShell, LOCAL_SHELL, None) {
                    functions.function(&offered, Some(LOCAL_SHELL_DESCRIPTION), LOCAL_SHELL_PARAMETERS, None);
                }
            }
            (kind, _) => log::debug!("event=responses_tool_dropped type={kind:?} name={name:?}"),
        }
    }

    /// The name a tool is offered under, and its origin kept for the way back; `None` when it
    /// is offered already.
    fn name(&mut self, kind: Kind, name: &str, namespace: Option<&str>) -> Option<String> {
        let origin = Origin { kind, name: name.to_owned(), namespace: namespace.map(str::to_owned) };
        let mut offered = namespace.map_or_else(|| name.to_owned(), |namespace| joined(namespace, name));
        let mut suffix = 1;
        while self.offered.get(&offered).is_some_and(|taken| *taken != origin) {
            suffix += 1;
            offered = format!("{}_{suffix}", namespace.map_or_else(|| name.to_owned(), |ns| joined(ns, name)));
        }
        self.bare
            .entry(name.to_owned())
            .and_modify(|known| {
                if known.as_deref() != Some(offered.as_str()) {
                    *known = None;
                }
            })
            .or_insert_with(|| Some(offered.clone()));
        self.offered.insert(offered.clone(), origin);
        self.written.insert(offered.clone()).then_some(offered)
    }

    /// The function a tool choice names, as it is offered upstream.
    pub fn offered_name(&self, name: &str, namespace: Option<&str>) -> String {
        let wanted = namespace.map_or_else(|| name.to_owned(), |namespace| joined(namespace, name));
        let matches = |origin: &Origin| origin.name == name && origin.namespace.as_deref() == namespace;
        match self.offered.get(&wanted) {
            Some(origin) if matches(origin) => wanted,
            _ => self.offered.iter().find(|(_, origin)| matches(origin)).map_or(wanted, |(offered, _)| offered.clone()),
        }
    }

    /// The client's tool behind a function the provider called: by the name it was offered
    /// under, else by a tool's own name if only one has it, else a plain function by that name.
    pub fn origin(&self, called: &str) -> Origin {
        let known = self.offered.get(called).or_else(|| {
            let offered = self.bare.get(called)?.as_ref()?;
            self.offered.get(offered)
        });
        known.cloned().unwrap_or_else(|| Origin { kind: Kind::Function, name: called.to_owned(), namespace: None })
    }

    pub fn is_empty(&self) -> bool {
        self.offered.is_empty()
    }
}

/// A custom tool's description, with its input's grammar when it has one: the model must
/// write the input in that form.
fn custom_description(tool: &Tool) -> String {
    let mut description = tool.description.as_deref().unwrap_or_default().to_owned();
    if let Some(format) = &tool.format {
        if let (Some("grammar"), Some(definition)) = (format.kind.as_deref(), &format.definition) {
            let syntax = format.syntax.as_deref().unwrap_or("lark");
            description.push_str(&format!(
                "\n\nThe `input` is free text (not JSON) that follows this {syntax} grammar:\n{definition}"
            ));
        }
    }
    description
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn offered(tools: Value) -> (ToolTable, Value) {
        let text = tools.to_string();
        let tools: Vec<Tool> = serde_json::from_str(&text).unwrap();
        let (mut table, mut functions) = (ToolTable::default(), Written::default());
        table.offer(&tools, &mut functions);
        let functions = format!("[{}]", String::from_utf8(functions.out).unwrap());
        (table, serde_json::from_str(&functions).unwrap())
    }

    #[test]
    fn every_kind_of_tool_is_a_function_or_is_dropped() {
        let (table, functions) = offered(json!([
            {"type": "function", "name": "exec_command", "description": "Run", "strict": false,
             "parameters": {"type": "object", "properties": {"cmd": {"type": "string"}}}},
            {"type": "namespace", "name": "multi_agent_v1", "description": "Agents", "tools": [
                {"type": "function", "name": "close_agent", "parameters": {"type": "object"}}]},
            {"type": "namespace", "name": "mcp__docs__", "tools": [{"type": "function", "name": "search"}]},
            {"type": "custom", "name": "apply_patch", "description": "Patch files",
             "format": {"type": "grammar", "syntax": "lark", "definition": "start: \"*** Begin Patch\""}},
            {"type": "local_shell"},
            {"type": "web_search", "external_web_access": false},
            {"type": "file_search", "vector_store_ids": ["v"]}
        ]));
        let names: Vec<&str> =
            functions.as_array().unwrap().iter().map(|f| f["function"]["name"].as_str().unwrap()).collect();
        assert_eq!(
            names,
            ["exec_command", "multi_agent_v1__close_agent", "mcp__docs__search", "apply_patch", "local_shell"]
        );
        assert_eq!(functions[0]["function"]["parameters"]["properties"]["cmd"]["type"], "string");
        assert_eq!(functions[0]["function"]["strict"], false);
        assert_eq!(functions[2]["function"]["parameters"], json!({"type": "object", "properties": {}}));
        assert_eq!(functions[3]["function"]["parameters"]["required"], json!(["input"]));
        assert!(functions[3]["function"]["description"].as_str().unwrap().contains("*** Begin Patch"));
        assert_eq!(functions[4]["function"]["parameters"]["properties"]["command"]["type"], "array");

        let origin = |kind, name: &str, namespace: Option<&str>| Origin {
            kind,
            name: name.to_owned(),
            namespace: namespace.map(str::to_owned),
        };
        assert_eq!(
            table.origin("multi_agent_v1__close_agent"),
            origin(Kind::Function, "close_agent", Some("multi_agent_v1"))
        );
        assert_eq!(
            table.origin("close_agent"),
            origin(Kind::Function, "close_agent", Some("multi_agent_v1")),
            "by its bare name"
        );
        assert_eq!(table.origin("apply_patch"), origin(Kind::Custom, "apply_patch", None));
        assert_eq!(table.origin("local_shell"), origin(Kind::LocalShell, "local_shell", None));
        assert_eq!(table.origin("unknown"), origin(Kind::Function, "unknown", None));
    }

    #[test]
    fn a_namespaced_name_that_is_taken_is_renamed_and_maps_back() {
        let (table, functions) = offered(json!([
            {"type": "namespace", "name": "a", "tools": [{"type": "function", "name": "b"}, {"type": "function", "name": "x"}]},
            {"type": "function", "name": "a__b"},
            {"type": "namespace", "name": "c", "tools": [{"type": "function", "name": "x"}]},
            {"type": "function", "name": "a__b"}
        ]));
        let names: Vec<&str> =
            functions.as_array().unwrap().iter().map(|f| f["function"]["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["a__b_2", "a__x", "a__b", "c__x"]);
        assert_eq!(table.origin("a__b_2").namespace.as_deref(), Some("a"));
        assert_eq!(table.origin("a__b").namespace, None);
        assert_eq!(table.origin("x").namespace, None, "two tools are named x: no guess");
        assert_eq!(table.offered_name("b", Some("a")), "a__b_2");
        assert_eq!(table.offered_name("a__b", None), "a__b");
    }
}
