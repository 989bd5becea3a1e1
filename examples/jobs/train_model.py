"""A SageMaker training job in miniature: fits y = a*x + b by gradient descent for the epochs in
its hyperparameters (SM_HPS), saves the model to SM_MODEL_DIR and to the run data bucket."""

import json
import os
import time

import boto3

hps = json.loads(os.environ.get("SM_HPS", "{}"))
epochs, rate = int(hps.get("epochs", "100")), float(hps.get("learning_rate", "0.05"))
points = [(x / 10, 3 * x / 10 + 1) for x in range(10)]
a = b = 0.0
for epoch in range(epochs):
    grad_a = sum(2 * (a * x + b - y) * x for x, y in points) / len(points)
    grad_b = sum(2 * (a * x + b - y) for x, y in points) / len(points)
    a, b = a - rate * grad_a, b - rate * grad_b
    if epoch % 50 == 0:
        print(f"epoch {epoch}: a={a:.3f} b={b:.3f}", flush=True)
time.sleep(float(os.environ.get("JOBLINE_ARG_SECONDS", "0")))
model = {"a": round(a, 3), "b": round(b, 3), "epochs": epochs, "training_job": os.environ.get("TRAINING_JOB_NAME")}
with open(os.path.join(os.environ.get("SM_MODEL_DIR", "."), "model.json"), "w") as f:
    json.dump(model, f)
key = f"models/{os.environ['JOBLINE_RUN_ID']}.json"
boto3.client("s3").put_object(Bucket=os.environ["RESULT_BUCKET"], Key=key, Body=json.dumps(model).encode())
print(f"model {model} saved to s3://{os.environ['RESULT_BUCKET']}/{key}")
