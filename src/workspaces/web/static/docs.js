// The API documentation: Swagger UI, served by the application itself (no CDN, no inline script).
window.addEventListener("load", () => {
  // validatorUrl null: Swagger UI would otherwise send the spec's address to validator.swagger.io.
  window.SwaggerUIBundle({ url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true,
                           validatorUrl: null });
});
