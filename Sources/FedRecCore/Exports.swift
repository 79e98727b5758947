// FedRecCore is the library as the commands see it: every layer, re-exported, so a
// command imports one module. Code inside the library imports only the layers it needs.
@_exported import FedRecAggregation
@_exported import FedRecData
@_exported import FedRecEvaluation
@_exported import FedRecFormats
@_exported import FedRecMechanisms
@_exported import FedRecModel
@_exported import FedRecPrivacy
@_exported import FedRecReport
@_exported import FedRecSecureAggregation
@_exported import FedRecSupport
@_exported import FedRecTraining
@_exported import FedRecWire
