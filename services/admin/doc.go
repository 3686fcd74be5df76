// Command strata-admin serves the admin HTTP API.
package main
