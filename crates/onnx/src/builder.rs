//! A small builder for ONNX graphs: enough for kiln's exporter and for tests
//! that need single-op models.

use prost::Message;

use crate::proto::{
    AttributeProto, Dimension, GraphProto, ModelProto, NodeProto, OperatorSetIdProto,
    StringStringEntryProto, TensorProto, TensorShapeProto, TypeProto, TypeProtoTensor,
    ValueInfoProto, attribute_type, data_type,
};

/// The opset kiln writes by default: 17 has HardSwish (14+) and Clip with
/// min/max as inputs (11+).
pub const DEFAULT_OPSET: i64 = 17;

/// One dimension of a graph input or output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dim {
    /// A fixed size.
    Fixed(usize),
    /// A named symbolic dimension such as `batch`.
    Symbolic(String),
}

impl From<usize> for Dim {
    fn from(n: usize) -> Dim {
        Dim::Fixed(n)
    }
}

/// A node attribute.
#[derive(Debug, Clone, PartialEq)]
pub struct Attribute(AttributeProto);

impl Attribute {
    /// An integer attribute, e.g. `group` or `axis`.
    pub fn int(name: &str, value: i64) -> Attribute {
        Attribute(AttributeProto {
            name: name.into(),
            i: value,
            r#type: attribute_type::INT,
            ..Default::default()
        })
    }

    /// A list-of-integers attribute, e.g. `kernel_shape`, `strides`, `pads`.
    pub fn ints(name: &str, values: &[i64]) -> Attribute {
        Attribute(AttributeProto {
            name: name.into(),
            ints: values.to_vec(),
            r#type: attribute_type::INTS,
            ..Default::default()
        })
    }

    /// A float attribute, e.g. BatchNormalization's `epsilon`.
    pub fn float(name: &str, value: f32) -> Attribute {
        Attribute(AttributeProto {
            name: name.into(),
            f: value,
            r#type: attribute_type::FLOAT,
            ..Default::default()
        })
    }

    /// A list-of-floats attribute.
    pub fn floats(name: &str, values: &[f32]) -> Attribute {
        Attribute(AttributeProto {
            name: name.into(),
            floats: values.to_vec(),
            r#type: attribute_type::FLOATS,
            ..Default::default()
        })
    }

    /// A string attribute (stored as UTF-8 bytes), e.g. `auto_pad`.
    pub fn string(name: &str, value: &str) -> Attribute {
        Attribute(AttributeProto {
            name: name.into(),
            s: value.as_bytes().to_vec(),
            r#type: attribute_type::STRING,
            ..Default::default()
        })
    }

    /// An f32 tensor attribute, as `Constant` nodes carry their value: `data` holds the
    /// `shape.iter().product()` values row-major (not checked here).
    pub fn tensor(name: &str, shape: &[usize], data: &[f32]) -> Attribute {
        Attribute(AttributeProto {
            name: name.into(),
            t: Some(f32_tensor("", shape, data)),
            r#type: attribute_type::TENSOR,
            ..Default::default()
        })
    }
}

fn f32_tensor(name: &str, shape: &[usize], data: &[f32]) -> TensorProto {
    TensorProto {
        dims: shape.iter().map(|&d| d as i64).collect(),
        data_type: data_type::FLOAT,
        name: name.into(),
        raw_data: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
    }
}

/// Builds one ONNX graph; [`GraphBuilder::encode`] writes the model bytes.
#[derive(Debug, Clone, Default)]
pub struct GraphBuilder {
    graph: GraphProto,
    metadata: Vec<StringStringEntryProto>,
    opset: Option<i64>,
}

impl GraphBuilder {
    /// An empty graph called `name`, to be written with [`DEFAULT_OPSET`].
    pub fn new(name: &str) -> GraphBuilder {
        GraphBuilder {
            graph: GraphProto {
                name: name.into(),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    /// Overrides [`DEFAULT_OPSET`].
    pub fn opset(&mut self, version: i64) -> &mut Self {
        self.opset = Some(version);
        self
    }

    /// Declares an f32 graph input.
    pub fn input(&mut self, name: &str, dims: &[Dim]) -> &mut Self {
        self.graph.input.push(value_info(name, Some(dims)));
        self
    }

    /// Declares an f32 graph output; `dims` may be left to shape inference.
    pub fn output(&mut self, name: &str, dims: Option<&[Dim]>) -> &mut Self {
        self.graph.output.push(value_info(name, dims));
        self
    }

    /// Adds an f32 initializer (a weight): `data` holds `shape` row-major (conv weights
    /// OIHW); `shape` `[]` is a scalar.
    pub fn initializer(&mut self, name: &str, shape: &[usize], data: &[f32]) -> &mut Self {
        self.graph.initializer.push(f32_tensor(name, shape, data));
        self
    }

    /// Adds an int64 initializer (shapes for Reshape, axes): `data` holds `shape` row-major.
    pub fn initializer_i64(&mut self, name: &str, shape: &[usize], data: &[i64]) -> &mut Self {
        self.graph.initializer.push(TensorProto {
            dims: shape.iter().map(|&d| d as i64).collect(),
            data_type: data_type::INT64,
            name: name.into(),
            raw_data: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
        });
        self
    }

    /// Adds a node. An empty input name stands for an omitted optional input.
    pub fn node(
        &mut self,
        name: &str,
        op_type: &str,
        inputs: &[&str],
        outputs: &[&str],
        attributes: Vec<Attribute>,
    ) -> &mut Self {
        self.graph.node.push(NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: outputs.iter().map(|s| s.to_string()).collect(),
            name: name.into(),
            op_type: op_type.into(),
            attribute: attributes.into_iter().map(|a| a.0).collect(),
        });
        self
    }

    /// Records a key/value pair in the model's metadata_props.
    pub fn metadata(&mut self, key: &str, value: &str) -> &mut Self {
        self.metadata.push(StringStringEntryProto {
            key: key.into(),
            value: value.into(),
        });
        self
    }

    /// The serialized ModelProto (IR version 8, the opset set or [`DEFAULT_OPSET`]): the
    /// bytes of a `.onnx` file. Nothing is checked: a graph that names unknown values or
    /// ops encodes all the same, and the reader reports it.
    pub fn encode(&self) -> Vec<u8> {
        let model = ModelProto {
            // IR version 8 goes with opsets up to 18.
            ir_version: 8,
            producer_name: "kiln".into(),
            producer_version: env!("CARGO_PKG_VERSION").into(),
            doc_string: String::new(),
            graph: Some(self.graph.clone()),
            opset_import: vec![OperatorSetIdProto {
                domain: String::new(),
                version: self.opset.unwrap_or(DEFAULT_OPSET),
            }],
            metadata_props: self.metadata.clone(),
        };
        model.encode_to_vec()
    }
}

fn value_info(name: &str, dims: Option<&[Dim]>) -> ValueInfoProto {
    let shape = dims.map(|dims| TensorShapeProto {
        dim: dims
            .iter()
            .map(|d| match d {
                Dim::Fixed(n) => Dimension {
                    dim_value: Some(*n as i64),
                    dim_param: None,
                },
                Dim::Symbolic(s) => Dimension {
                    dim_value: None,
                    dim_param: Some(s.clone()),
                },
            })
            .collect(),
    });
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            tensor_type: Some(TypeProtoTensor {
                elem_type: data_type::FLOAT,
                shape,
            }),
        }),
    }
}
