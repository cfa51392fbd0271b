"""Deploy archives to a SageMaker multi-model endpoint running NVIDIA's Triton image.

The modules follow the order of a deployment, one AWS concern each:

``archives``   upload ``.tar.gz`` archives to S3 under immutable keys (and copy them on promotion)
``endpoint``   the SageMaker model, endpoint config and endpoint, waiting until ``InService``
``autoscaling`` target tracking on ``SageMakerVariantInvocationsPerInstance`` from ``capacity.json``
``golden``     golden-output checks through ``sagemaker-runtime`` ``InvokeEndpoint``
``fraud_golden`` the default golden check of a fraud archive, recomputed from the archive
``promote``    staging → production: copy archives only when every golden check passes
``iam``        per-tenant ``InvokeEndpoint`` policies restricted by ``sagemaker:TargetModel``
``teardown``   delete everything the other steps created

with ``images`` (the Triton image URI per region), ``validation`` (inputs refused before any
call), ``errors`` and ``cli`` (the ``tritonmm deploy`` typer sub-app).

Every AWS call goes through :class:`~tritonmm.deploy.calls.AwsCalls`, which is what makes
``--dry-run`` print the exact calls instead of making them, without a second copy of the logic.
"""
