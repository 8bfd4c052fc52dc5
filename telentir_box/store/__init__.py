"""The encrypted object store, wire-compatible with the live Telentir API: platform
and user servers, provisioning of the root object, keys, objects and publications."""
