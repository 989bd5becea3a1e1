"""template.yaml deployed to the local AWS: translated offline to plain CloudFormation
(template), its resources created with plain API calls (deployer), and what was made
(deployment)."""
