// Command strata is the Strata command-line tool.
package main
