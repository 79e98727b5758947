import FedRecCore
