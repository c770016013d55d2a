//! The subset of the ONNX protobuf schema (onnx.proto3) that kiln writes,
//! as prost messages. Field numbers follow the published schema; fields kiln
//! never writes are left out (protobuf readers skip absent fields).

/// A whole model file: the graph, its opsets and metadata.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ModelProto {
    /// ONNX IR version (kiln writes 8).
    #[prost(int64, tag = "1")]
    pub ir_version: i64,
    /// The tool that wrote the model (`kiln`).
    #[prost(string, tag = "2")]
    pub producer_name: String,
    /// The producer's version.
    #[prost(string, tag = "3")]
    pub producer_version: String,
    /// Free-form description (kiln leaves it empty).
    #[prost(string, tag = "6")]
    pub doc_string: String,
    /// The model graph.
    #[prost(message, optional, tag = "7")]
    pub graph: Option<GraphProto>,
    /// The opsets the graph uses; the empty domain is the default ONNX one.
    #[prost(message, repeated, tag = "8")]
    pub opset_import: Vec<OperatorSetIdProto>,
    /// Key/value metadata (kiln writes `kiln.*` keys).
    #[prost(message, repeated, tag = "14")]
    pub metadata_props: Vec<StringStringEntryProto>,
}

/// One opset the model uses (domain and version).
#[derive(Clone, PartialEq, prost::Message)]
pub struct OperatorSetIdProto {
    /// Operator domain; empty for the default ONNX domain.
    #[prost(string, tag = "1")]
    pub domain: String,
    /// Opset version, e.g. 17.
    #[prost(int64, tag = "2")]
    pub version: i64,
}

/// A key/value pair of `ModelProto.metadata_props`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct StringStringEntryProto {
    /// The key.
    #[prost(string, tag = "1")]
    pub key: String,
    /// The value.
    #[prost(string, tag = "2")]
    pub value: String,
}

/// The graph: nodes in topological order, weights, inputs and outputs.
#[derive(Clone, PartialEq, prost::Message)]
pub struct GraphProto {
    /// The nodes, in topological order.
    #[prost(message, repeated, tag = "1")]
    pub node: Vec<NodeProto>,
    /// The graph name.
    #[prost(string, tag = "2")]
    pub name: String,
    /// Constant tensors (weights), referenced by name from node inputs.
    #[prost(message, repeated, tag = "5")]
    pub initializer: Vec<TensorProto>,
    /// Graph inputs.
    #[prost(message, repeated, tag = "11")]
    pub input: Vec<ValueInfoProto>,
    /// Graph outputs.
    #[prost(message, repeated, tag = "12")]
    pub output: Vec<ValueInfoProto>,
}

/// One operator application.
#[derive(Clone, PartialEq, prost::Message)]
pub struct NodeProto {
    /// Input value names; an empty name is an omitted optional input.
    #[prost(string, repeated, tag = "1")]
    pub input: Vec<String>,
    /// Output value names.
    #[prost(string, repeated, tag = "2")]
    pub output: Vec<String>,
    /// Node name (for diagnostics).
    #[prost(string, tag = "3")]
    pub name: String,
    /// Operator, e.g. `Conv`.
    #[prost(string, tag = "4")]
    pub op_type: String,
    /// Attributes.
    #[prost(message, repeated, tag = "5")]
    pub attribute: Vec<AttributeProto>,
}

/// `AttributeProto.AttributeType` values.
pub mod attribute_type {
    /// One f32 (`AttributeProto.f`).
    pub const FLOAT: i32 = 1;
    /// One i64 (`AttributeProto.i`).
    pub const INT: i32 = 2;
    /// Bytes (`AttributeProto.s`).
    pub const STRING: i32 = 3;
    /// A tensor (`AttributeProto.t`).
    pub const TENSOR: i32 = 4;
    /// A list of f32 (`AttributeProto.floats`).
    pub const FLOATS: i32 = 6;
    /// A list of i64 (`AttributeProto.ints`).
    pub const INTS: i32 = 7;
}

/// A named node attribute; `type` says which value field is set.
#[derive(Clone, PartialEq, prost::Message)]
pub struct AttributeProto {
    /// Attribute name, e.g. `kernel_shape`.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Value of a `FLOAT` attribute.
    #[prost(float, tag = "2")]
    pub f: f32,
    /// Value of an `INT` attribute.
    #[prost(int64, tag = "3")]
    pub i: i64,
    /// Value of a `STRING` attribute (UTF-8 bytes).
    #[prost(bytes = "vec", tag = "4")]
    pub s: Vec<u8>,
    /// Value of a `TENSOR` attribute.
    #[prost(message, optional, tag = "5")]
    pub t: Option<TensorProto>,
    /// Value of a `FLOATS` attribute.
    #[prost(float, repeated, tag = "7")]
    pub floats: Vec<f32>,
    /// Value of an `INTS` attribute.
    #[prost(int64, repeated, tag = "8")]
    pub ints: Vec<i64>,
    /// Which value is set: one of [`attribute_type`].
    #[prost(int32, tag = "20")]
    pub r#type: i32,
}

/// `TensorProto.DataType` values.
pub mod data_type {
    /// 32-bit IEEE float.
    pub const FLOAT: i32 = 1;
    /// 64-bit signed integer.
    pub const INT64: i32 = 7;
}

/// A tensor value (a weight or a constant attribute).
#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorProto {
    /// Shape, outermost dimension first; empty for a scalar.
    #[prost(int64, repeated, tag = "1")]
    pub dims: Vec<i64>,
    /// Element type: one of [`data_type`].
    #[prost(int32, tag = "2")]
    pub data_type: i32,
    /// Tensor name (initializers are referenced by it).
    #[prost(string, tag = "8")]
    pub name: String,
    /// Little-endian element bytes.
    #[prost(bytes = "vec", tag = "9")]
    pub raw_data: Vec<u8>,
}

/// The name and type of a graph input or output.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ValueInfoProto {
    /// Value name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Value type.
    #[prost(message, optional, tag = "2")]
    pub r#type: Option<TypeProto>,
}

/// A value type; kiln only writes tensor types.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TypeProto {
    /// The tensor type.
    #[prost(message, optional, tag = "1")]
    pub tensor_type: Option<TypeProtoTensor>,
}

/// A tensor type (`TypeProto.Tensor`): element type and shape.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TypeProtoTensor {
    /// Element type: one of [`data_type`].
    #[prost(int32, tag = "1")]
    pub elem_type: i32,
    /// Shape; absent leaves it to shape inference.
    #[prost(message, optional, tag = "2")]
    pub shape: Option<TensorShapeProto>,
}

/// A tensor shape: one entry per dimension, outermost first.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorShapeProto {
    /// Dimensions, outermost first.
    #[prost(message, repeated, tag = "1")]
    pub dim: Vec<Dimension>,
}

/// One dimension (`TensorShapeProto.Dimension`): a fixed size or a symbolic name.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Dimension {
    /// A fixed size.
    #[prost(int64, optional, tag = "1")]
    pub dim_value: Option<i64>,
    /// A symbolic name such as `batch`.
    #[prost(string, optional, tag = "2")]
    pub dim_param: Option<String>,
}
