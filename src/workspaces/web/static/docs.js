// The API documentation: Swagger UI, served by the application itself (no CDN, no inline script).
window.addEventListener("load", () => {
  window.SwaggerUIBundle({ url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true });
});
