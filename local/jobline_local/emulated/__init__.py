"""The AWS services whose work the local stack does itself, each next to its local compute.

moto keeps each service's API and state; what it cannot do (run code, run jobs, fire schedules,
poll event sources) is done here, through the status changes and events the real service makes:

- batch: Batch container jobs; batch_service_jobs (the API moto lacks) and batch_service_compute:
  Batch service jobs (SageMaker training); sagemaker_processing; glue: Glue job runs. Their shared
  process, log and event handling is compute.
- lambda_service (Invoke, async invocations with retries and destinations), lambda_workers (warm
  processes running lambda_runtime), event_source_mappings (SQS and DynamoDB stream pollers).
- scheduler: EventBridge Scheduler's expressions on a local clock.

Each module that changes moto for its service registers that change in jobline_local.adaptations.
"""
