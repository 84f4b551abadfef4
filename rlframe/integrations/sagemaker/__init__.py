"""SageMaker training-container support: the ``/opt/ml`` layout, the toolkit's environment, the entrypoint
(``rlframe-sagemaker train``), the Docker-less local mode (``rlframe-local``) and the Coach-style launcher."""
