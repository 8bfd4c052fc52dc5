"""HTTP plumbing shared by every route: error responses, request ids, access log."""
