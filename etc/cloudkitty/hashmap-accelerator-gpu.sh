#!/bin/sh
# Rate the accelerator.gpu metric per GPU-hour and GPU model with
# CloudKitty's hashmap rating module. Run with admin credentials loaded:
#
#   cloudkitty module enable hashmap
#   cloudkitty hashmap service create accelerator.gpu
#   cloudkitty hashmap field create <service id from the output> model
#   FIELD_ID=<field id from the output> ./hashmap-accelerator-gpu.sh
#
# Prices are examples in the currency of your CloudKitty deployment.
# NOTE: an example, not run against a CloudKitty deployment here.

set -e

: "${FIELD_ID:?set FIELD_ID to the id of the hashmap field model}"

# One flat price per GPU-hour for each model name that the driver reports
# in the "model" field of its usage payload.
cloudkitty hashmap mapping create 2.50 --field-id "$FIELD_ID" \
    --value A100-SXM4-40GB -t flat
cloudkitty hashmap mapping create 3.20 --field-id "$FIELD_ID" \
    --value A100-SXM4-80GB -t flat
cloudkitty hashmap mapping create 4.90 --field-id "$FIELD_ID" \
    --value H100-SXM5-80GB -t flat
cloudkitty hashmap mapping create 0.60 --field-id "$FIELD_ID" \
    --value L4 -t flat
