"""The vectorstore: a gRPC service over Milvus, one collection per encoder version."""
