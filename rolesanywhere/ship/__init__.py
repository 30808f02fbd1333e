"""Shipping logs to OpenSearch Ingestion: tail, shipper, logging handler and configuration
(layer 4)."""
