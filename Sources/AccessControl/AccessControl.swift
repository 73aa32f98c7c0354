import ImageSetStore

// The AccessControl layer: authentication (API keys, OIDC JWTs) and the route policy. It sits
// between the store, which keeps key hashes and the audit trail, and DICOMweb, which asks it who a
// request comes from and whether that principal may do what the route does.
