// Package adminapi is the admin HTTP API's contract: its routes, the
// policy watch's header and waits, and the JSON bodies of its requests
// and answers. strata-admin serves them (services/admin/internal/httpapi
// and its console), the strata CLI and the ACL policy watcher (pkg/acl)
// call them; all of them use these types, so a field is named once.
//
// Topic routes answer the protobuf JSON form of the strata.v1 messages
// (.proto field names, zero values included) and are not repeated here.
// The package holds types and constants only and imports nothing beyond
// the standard library.
package adminapi
