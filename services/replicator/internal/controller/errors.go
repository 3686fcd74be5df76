package controller

import "errors"

// Errors of the controller's topic operations.
var (
	ErrNotEnoughBrokers = errors.New("controller: not enough live brokers")
	ErrInvalidRequest   = errors.New("controller: invalid request")
)
