# Placeholder; the image build is completed together with the Helm chart.
FROM node:20-slim
