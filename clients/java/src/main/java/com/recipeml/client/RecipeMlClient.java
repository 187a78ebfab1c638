package com.recipeml.client;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.List;

/**
 * A small client of the Recipe ML API: {@code java.net.http.HttpClient} and Jackson, nothing else.
 *
 * <p>Every method returns the typed answer or throws {@link RecipeMlException} carrying the
 * service's problem (404 unknown user or recipe, 422 invalid field, 401 missing key, 409 catalogue
 * full, 503 retry...). With an API key, it is sent as {@code Authorization: Bearer <key>}.
 * Thread-safe; make one per service.
 */
public final class RecipeMlClient {
    private final URI baseUrl;
    private final String apiKey;
    private final HttpClient http;
    private final ObjectMapper json;
    private final Duration timeout;

    /** {@code baseUrl} like {@code http://recipe-ml:8000}; {@code apiKey} null when API_KEYS is unset. */
    public RecipeMlClient(URI baseUrl, String apiKey) {
        this(baseUrl, apiKey, HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build(), Duration.ofSeconds(10));
    }

    public RecipeMlClient(URI baseUrl, String apiKey, HttpClient http, Duration timeout) {
        this.baseUrl = baseUrl;
        this.apiKey = apiKey;
        this.http = http;
        this.timeout = timeout;
        this.json = new ObjectMapper()
                // New response fields must not break an older client.
                .configure(DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES, false);
    }

    public Models.RecipeRecommendations recommendRecipes(Models.RecipeRequest request) {
        return post("/api/recommendations/recipes", request, Models.RecipeRecommendations.class);
    }

    public Models.SimilarUsers similarUsers(Models.SimilarUsersRequest request) {
        return post("/api/recommendations/users", request, Models.SimilarUsers.class);
    }

    public Models.SimilarRecipes similarRecipes(Models.SimilarRecipesRequest request) {
        return post("/api/recommendations/similar-recipes", request, Models.SimilarRecipes.class);
    }

    public Models.BatchResponse recommendBatch(Models.BatchRequest request) {
        return post("/api/recommendations/batch", request, Models.BatchResponse.class);
    }

    public Models.ColdStartRecommendations coldStart(Models.ColdStartRequest request) {
        return post("/api/recommendations/cold-start", request, Models.ColdStartRecommendations.class);
    }

    /** The HTTP alternative to publishing the event to Kafka; a 503 means: keep it, retry later. */
    public Models.InteractionAccepted postInteraction(Models.InteractionEvent event) {
        return post("/api/interactions", event, Models.InteractionAccepted.class);
    }

    public Models.Health health() {
        return send(request("/api/health").GET().build(), Models.Health.class);
    }

    /**
     * Creates or replaces the recipe's catalogue record ({@code PUT /api/recipes/{recipeId}}); the record that
     * stands after, with {@code applied} false when nothing changed (the same record again, or an older
     * {@code updatedAt} than the stored one). A 409 problem ({@link RecipeMlException#isCatalogueFull()}) when
     * the catalogue holds CATALOGUE_MAX_RECIPES recipes and this one is new.
     */
    public Models.RecipeWritten putRecipe(long recipeId, Models.RecipeFields fields) {
        return send("PUT", "/api/recipes/" + recipeId, fields, Models.RecipeWritten.class);
    }

    /**
     * The recipe's catalogue record, whether the models know it and its live interactions ({@code GET
     * /api/recipes/{recipeId}}); a 404 problem ({@link RecipeMlException#isUnknownRecipe()}) when it has no
     * record and the models do not know it.
     */
    public Models.RecipeDetails getRecipe(long recipeId) {
        return send(request("/api/recipes/" + recipeId).GET().build(), Models.RecipeDetails.class);
    }

    /**
     * Many catalogue records in one write, all or none ({@code POST /api/recipes/bulk}): one invalid record is a
     * 422 naming it ({@code recipes.3.tags.0}) and nothing is applied.
     */
    public Models.BulkRecipesWritten putRecipes(List<Models.RecipeUpsert> recipes) {
        return post("/api/recipes/bulk", new Models.BulkRecipesRequest(recipes), Models.BulkRecipesWritten.class);
    }

    private <T> T post(String path, Object body, Class<T> type) {
        return send("POST", path, body, type);
    }

    private <T> T send(String method, String path, Object body, Class<T> type) {
        byte[] payload;
        try {
            payload = json.writeValueAsBytes(body);
        } catch (JsonProcessingException e) {
            throw new IllegalArgumentException("cannot serialize " + body, e);
        }
        HttpRequest request = request(path)
                .header("Content-Type", "application/json")
                .method(method, HttpRequest.BodyPublishers.ofByteArray(payload))
                .build();
        return send(request, type);
    }

    private HttpRequest.Builder request(String path) {
        HttpRequest.Builder builder = HttpRequest.newBuilder(baseUrl.resolve(path))
                .timeout(timeout)
                .header("Accept", "application/json, application/problem+json");
        if (apiKey != null) {
            builder.header("Authorization", "Bearer " + apiKey);
        }
        return builder;
    }

    private <T> T send(HttpRequest request, Class<T> type) {
        HttpResponse<byte[]> response;
        try {
            response = http.send(request, HttpResponse.BodyHandlers.ofByteArray());
        } catch (IOException e) {
            throw new UncheckedIOException("cannot reach " + request.uri(), e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted calling " + request.uri(), e);
        }
        try {
            if (response.statusCode() >= 400) {
                throw new RecipeMlException(json.readValue(response.body(), Models.Problem.class));
            }
            return json.readValue(response.body(), type);
        } catch (IOException e) {
            throw new UncheckedIOException("unexpected body from " + request.uri() + " (HTTP " + response.statusCode() + ")", e);
        }
    }
}
