// Package httpapi is the admin service's HTTP API: a chi router whose every
// route passes one guard (authentication by the verified client certificate,
// then authorization against the ACL policy), JSON errors, and one resource
// struct per area mounted under /v1.
package httpapi
