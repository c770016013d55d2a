//! The user's ONNX node behind each of tract's decluttered nodes, so that
//! an error names the node and op type of the model (`p1`, PRelu) rather
//! than the pieces tract expanded it into (`p1.test`, GT).
//!
//! tract names a node after the ONNX node's name (its first output's name
//! when it has none) and the nodes it derives from one after that name with
//! a suffix (`.exp`, `-dispose-dims-2`, `.split-0-over-1...`); the longest
//! ONNX name that prefixes tract's name, followed by a separator, is the
//! source.

use tract_onnx::pb::{AttributeProto, ModelProto};

/// Each ONNX node: (tract's name for it, the name shown to the user, op
/// type), and its attributes.
#[derive(Debug, Default)]
pub(crate) struct OnnxNodes(Vec<(String, String, String)>, Vec<Vec<AttributeProto>>);

impl OnnxNodes {
    /// The nodes of `model`'s graph; an unnamed node is shown as
    /// `#index op_type` (as the QDQ path shows it), found by its first output.
    pub(crate) fn new(model: &ModelProto) -> OnnxNodes {
        let Some(g) = &model.graph else {
            return OnnxNodes::default();
        };
        let (nodes, attrs) = g
            .node
            .iter()
            .enumerate()
            .filter_map(|(i, n)| {
                let (tract, shown) = if !n.name.is_empty() {
                    (n.name.clone(), n.name.clone())
                } else {
                    let out = n.output.first().filter(|o| !o.is_empty())?;
                    (out.clone(), format!("#{i} {}", n.op_type))
                };
                Some(((tract, shown, n.op_type.clone()), n.attribute.clone()))
            })
            .unzip();
        OnnxNodes(nodes, attrs)
    }

    /// `(shown name, op type)` of the ONNX node tract's node `tract_name`
    /// comes from, if one is found.
    pub(crate) fn source(&self, tract_name: &str) -> Option<(&str, &str)> {
        self.find(tract_name)
            .map(|i| (self.0[i].1.as_str(), self.0[i].2.as_str()))
    }

    /// The float attribute `name` of the ONNX node behind `tract_name`
    /// (`default` when the node does not set it).
    pub(crate) fn float_attr(&self, tract_name: &str, name: &str, default: f32) -> f32 {
        self.attr(tract_name, name).map_or(default, |a| a.f)
    }

    /// The integer attribute `name` of the ONNX node behind `tract_name`.
    pub(crate) fn int_attr(&self, tract_name: &str, name: &str) -> Option<i64> {
        self.attr(tract_name, name).map(|a| a.i)
    }

    fn attr(&self, tract_name: &str, name: &str) -> Option<&AttributeProto> {
        let i = self.find(tract_name)?;
        self.1[i].iter().find(|a| a.name == name)
    }

    /// Index of the ONNX node behind `tract_name`.
    fn find(&self, tract_name: &str) -> Option<usize> {
        self.0
            .iter()
            .enumerate()
            .filter(|(_, (t, _, _))| {
                tract_name == t
                    || tract_name
                        .strip_prefix(t.as_str())
                        .is_some_and(|rest| rest.starts_with(['.', '-', '#']))
            })
            .max_by_key(|(_, (t, _, _))| t.len())
            .map(|(i, _)| i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(list: &[(&str, &str)]) -> OnnxNodes {
        OnnxNodes(
            list.iter()
                .map(|(n, op)| (n.to_string(), n.to_string(), op.to_string()))
                .collect(),
            vec![Vec::new(); list.len()],
        )
    }

    #[test]
    fn derived_names_lead_back_to_the_longest_onnx_name() {
        let n = nodes(&[
            ("p1", "PRelu"),
            ("split", "Split"),
            ("p", "Pad"),
            ("p1x", "Relu"),
        ]);
        assert_eq!(n.source("p1.test"), Some(("p1", "PRelu")));
        assert_eq!(
            n.source("split-0-over-1.0..4.slice"),
            Some(("split", "Split"))
        );
        assert_eq!(n.source("p"), Some(("p", "Pad")));
        assert_eq!(n.source("p1x"), Some(("p1x", "Relu")));
        assert_eq!(n.source("q.exp"), None);
        assert_eq!(n.source("p1xy"), None);
    }
}
