//! tfchain over substrate JSON-RPC (being written).
