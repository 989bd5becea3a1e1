"""template.yaml deployed to the local AWS: translated offline to plain CloudFormation
(template), its resources created with plain API calls in dependency order (deployer, with the
creators of each resource family in storage_messaging, identity_network and compute_resources,
and api_params to map properties to API parameters), and what was made (deployment)."""
