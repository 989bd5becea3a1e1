"""jobline's example Glue job: reads the run's jobline arguments and writes a receipt to the run
data bucket. Glue passes job parameters as `--name value` pairs; jobline adds --jobline_run_id,
--jobline_attempt, --jobline_trigger_event (or --jobline_trigger_event_s3_uri) and one
--jobline_arg_<name> per argument."""

import json
import sys

import boto3


def arguments(argv: list[str]) -> dict[str, str]:
    pairs = zip(argv[1::2], argv[2::2], strict=False)
    return {key[2:]: value for key, value in pairs if key.startswith("--")}


def main() -> None:
    args = arguments(sys.argv)
    receipt = {k: v for k, v in args.items() if k.startswith("jobline_")}
    print(json.dumps(receipt))
    key = f"glue-example/{args['jobline_run_id']}-{args['jobline_attempt']}.json"
    boto3.client("s3").put_object(Bucket=args["run_data_bucket"], Key=key, Body=json.dumps(receipt).encode())


if __name__ == "__main__":
    main()
