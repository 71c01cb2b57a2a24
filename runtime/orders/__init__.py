"""Order pipeline runtime: one package shipped to Lambda and to the ECS worker image."""
